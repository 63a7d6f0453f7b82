"""Harness benchmark (prints figures; not a test).

For each task: cold cache build time (in a fresh cache directory), the first evaluation of a
fresh evaluator (its warm worker starts: sandbox, torch import), then idea evaluations (3 seeds,
warm cache and worker, through the evaluator and its idea processes) against the bare compute
of the same heads in-process, their ratio, and peak memory of this process (cache build included).

    .venv/bin/python benchmarks/harness.py [--tasks wordnet-10,rt-mpnet] [--repeats 3] [--cache-dir DIR]

``--cache-dir`` reuses (or builds once) the caches there instead of a fresh directory, so
several runs (e.g. an older checkout and this one, alternating: ``AAR_BENCH_TREE=/path/to/tree``
imports that tree's harness) compare evaluation alone; the cold-build time is then not a cold one.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(os.environ.get("AAR_BENCH_TREE") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(ROOT))

from sandbox.baseline_ideas import baseline_path  # noqa: E402
from sandbox.cache.task_cache import open_cache  # noqa: E402
from sandbox.runtime.train import train_head  # noqa: E402
from sandbox.scoring.evaluator import Evaluator  # noqa: E402
from sandbox.tasks import get_task  # noqa: E402

SEEDS = [0, 1, 2]


def bare_heads(cache, threads: int) -> float:  # noqa: ANN001
    """The same vanilla heads, trained in this process on the cached arrays, with the threads
    each seed gets in the evaluator (on a busy machine more threads than free cores make torch's
    thread pool spin: one bare run took 406 s at 2 threads against 13 s for the sandboxed seeds)."""
    import numpy as np
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    started = time.perf_counter()
    x = np.load(cache.public_dir / "features" / "unlabeled__final.npy")
    x_test = np.load(cache.public_dir / "features" / "test__final.npy")
    for seed in SEEDS:
        soft = np.load(cache.public_dir / "weak" / f"seed_{seed}" / "unlabeled_soft.npy")
        train_head(x, soft, seed=seed).predict_proba(x_test)
    elapsed = time.perf_counter() - started
    torch.set_num_threads(before)
    return elapsed


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default="wordnet-10,rt-mpnet")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--isolation", default=os.environ.get("AAR_BENCH_ISOLATION", "process"))
    parser.add_argument("--cache-dir", type=Path, help="reuse caches here (no cold build timed)")
    args = parser.parse_args()
    idea = baseline_path("vanilla_soft")
    print(f"tree={ROOT} cpus={os.cpu_count()} isolation={args.isolation} repeats={args.repeats} seeds={SEEDS}")
    for name in args.tasks.split(","):
        with tempfile.TemporaryDirectory(prefix="aar-bench-cache-") as tmp:
            spec = get_task(name)
            started = time.perf_counter()
            cache = open_cache(spec, show_progress=False, root=args.cache_dir or Path(tmp))
            cold = time.perf_counter() - started
            evaluator = Evaluator(cache, isolation=args.isolation)
            t = time.perf_counter()
            evaluator.evaluate(idea, SEEDS, charge=False)
            first = time.perf_counter() - t  # the worker's start included
            evaluator.vanilla_pgrs(SEEDS)  # warm the vanilla reference so it is not timed
            runs, bare = [], []
            for _ in range(args.repeats):
                t = time.perf_counter()
                result = evaluator.evaluate(idea, SEEDS, charge=False)
                runs.append(time.perf_counter() - t)
                bare.append(bare_heads(cache, evaluator._limits().threads))
            eval_s, bare_s = statistics.median(runs), statistics.median(bare)
            build = "cache reused" if args.cache_dir else "cold cache build"
            print(f"{name}: {build} {cold:.1f}s | first eval (worker start included) {first:.2f}s "
                  f"| eval vanilla_soft 3 seeds (warm) median "
                  f"{eval_s:.2f}s vs bare in-process heads ({evaluator._limits().threads} thread) "
                  f"{bare_s:.2f}s -> ratio {eval_s / bare_s:.1f}x "
                  f"| PGR {result.pgr.mean:+.3f} | peak RSS of this process {peak_mb(resource.RUSAGE_SELF):.0f} MB "
                  "(children's ru_maxrss is not reported: forked children count the parent's pages)")


if __name__ == "__main__":
    main()
