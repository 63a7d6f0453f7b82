"""Sandbox v2 figures, for whichever checkout is first on PYTHONPATH (run it for a "before" tree
and an "after" tree in the same session, interleaved, to compare in the same conditions).

    PYTHONPATH=<tree> python benchmarks/sandbox_v2.py --cache-dir DIR [--repeats 3] [--what ratio,pin,disk,slow]

ratio: a 3-seed evaluation of vanilla_soft under bwrap (2 seeds at once, 1 thread each) on a
warm worker against the bare compute of the same heads in this process, median of
``--repeats`` (the first evaluation, which starts the worker, is reported apart). pin: memory an
attack holds in memfd files under a 1 GiB limit (from its own log). disk: space it reserves with
fallocate(KEEP_SIZE). slow: wall time of a vanilla seed alone and next to a CPU-hog attempt.
pagecache: the read-timing page-cache channel between two concurrent seeds (sandbox_attacks/
page_cache_timing.py) after the host evicts the shared file: bits sent, error rate, capacity
(binary symmetric channel) per eviction and per second, and that as wordnet-10 labels.
Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import statistics
import threading
import time
from pathlib import Path

import sandbox
from sandbox.baseline_ideas import baseline_path
from sandbox.cache.task_cache import open_cache
from sandbox.isolation.base import Limits
from sandbox.scoring.evaluator import Evaluator
from sandbox.tasks import SplitSizes, get_task

HERE = Path(__file__).resolve().parent / "sandbox_attacks"
SEEDS = [0, 1, 2]


class LimitedEvaluator(Evaluator):
    memory = 1 << 30

    def _limits(self) -> Limits:
        return Limits(time_s=self.time_budget_s, threads=1, memory_bytes=self.memory, scratch_bytes=256 << 20)


def _eval(cache, idea: Path, seeds: list[int], parallel: int = 2, cls=Evaluator):  # noqa: ANN001
    return cls(cache, isolation="bwrap", time_budget_s=300, parallel=parallel).evaluate(
        idea, seeds, compare_vanilla=False, charge=False)


def last_number(text: str, word: str) -> int:
    found = re.findall(rf"{word} (\d+)", text)
    return int(found[-1]) if found else 0


def _load(path: Path):  # noqa: ANN202 - an idea module
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entropy(p: float) -> float:
    return 0.0 if p <= 0 or p >= 1 else -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def page_cache_channel(cache, repeats: int) -> dict:  # noqa: ANN001
    """Evict the shared file on the host, run sender and receiver at once, measure the channel."""
    idea = HERE / "page_cache_timing.py"
    path = _load(idea).target(cache.public_dir)
    runs = []
    for _ in range(repeats):
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # the host may; a seed may not
        os.close(fd)
        result = _eval(cache, idea, [0, 1], parallel=2)
        assert result.status == "ok", [s.error for s in result.seeds]
        d = result.seeds[1].diagnostics
        error = 1 - d["right"] / d["bits"]
        capacity = d["bits"] * (1 - _entropy(min(error, 1 - error)))
        runs.append({"bits": d["bits"], "error_rate": round(error, 4), "capacity_bits": round(capacity, 1),
                     "bits_per_s": round(capacity / max(d["seconds"], 1e-9), 1),
                     "fast_ns": d["fast_ns"], "slow_ns": d["slow_ns"]})
    best = max(runs, key=lambda r: r["capacity_bits"])
    return {"file": path.name, "file_mib": round(path.stat().st_size / 2**20, 1), "runs": runs,
            "labels_per_eviction": round(best["capacity_bits"] / math.log2(len(cache.card().classes)), 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--what", default="ratio,pin,disk,slow,pagecache")
    parser.add_argument("--threads", type=int, default=1, help="threads of the concurrent run (slow)")
    parser.add_argument("--sizes", default="200,600,200,200",
                        help="wordnet-10 split sizes, or 'default' (the task's own: longer seeds)")
    args = parser.parse_args()
    tree = str(Path(sandbox.__file__).resolve().parents[1])
    sizes = None if args.sizes == "default" else SplitSizes.parse(args.sizes)
    cache = open_cache(get_task("wordnet-10", sizes), show_progress=False, root=args.cache_dir)
    what = args.what.split(",")
    out = {"tree": tree}
    if "ratio" in what:
        # harness.py (this folder) puts its own tree first on sys.path: import it only after
        # sandbox came from the tree on PYTHONPATH, so a "before" tree stays the one measured
        from harness import bare_heads

        vanilla = baseline_path("vanilla_soft")
        evaluator = Evaluator(cache, isolation="bwrap", time_budget_s=300, parallel=2)
        evals, bares = [], []
        for _ in range(args.repeats + 1):  # the first starts the (then warm) worker
            t = time.perf_counter()
            result = evaluator.evaluate(vanilla, SEEDS, compare_vanilla=False, charge=False)
            evals.append(time.perf_counter() - t)
            assert result.status == "ok", result.seeds[0].error
            bares.append(bare_heads(cache, threads=1))  # what each sandboxed seed gets
        warm = statistics.median(evals[1:])
        out["ratio"] = {"first_eval_s": evals[0], "eval_s": warm, "bare_s": statistics.median(bares),
                        "ratio": warm / statistics.median(bares)}
    if "pin" in what:
        seed = _eval(cache, HERE / "pin_memory.py", [0], 1, LimitedEvaluator).seeds[0]
        pinned = last_number(seed.log_tail, "pinned")
        out["pin"] = {"status": seed.status, "limit_mib": LimitedEvaluator.memory >> 20, "pinned_mib": pinned,
                      "beyond_limit": max(0, pinned - (LimitedEvaluator.memory >> 20))
                      / (LimitedEvaluator.memory >> 20)}
    if "disk" in what:
        seed = _eval(cache, HERE / "reserve_disk.py", [0], 1, LimitedEvaluator).seeds[0]
        out["disk"] = {"status": seed.status, "reserved_mib": last_number(seed.log_tail, "reserved"),
                       "error": seed.error}
    if "pagecache" in what:
        out["pagecache"] = page_cache_channel(cache, args.repeats)
    if "slow" in what:
        # The concurrent run is an ordinary seed: 1 thread (2 seeds at once on 2 cores) by default.
        vanilla = baseline_path("vanilla_soft")
        par = max(1, (os.cpu_count() or 1) // args.threads)
        alone, beside = [], []
        for _ in range(args.repeats):  # alternating, so both see the same background load
            alone.append(_eval(cache, vanilla, [1], par).seeds[0].runtime_s)
            hog = threading.Thread(target=_eval, args=(cache, HERE / "cpu_hogs.py", [0], 1, LimitedEvaluator))
            hog.start()
            time.sleep(8)  # the hogs are running (worker started, children forked)
            beside.append(_eval(cache, vanilla, [1], par).seeds[0].runtime_s)
            hog.join()
        out["slow"] = {"alone_s": alone, "beside_hog_s": beside,
                       "slowdown": statistics.median(beside) / statistics.median(alone)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
