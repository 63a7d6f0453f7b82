"""Analysis-run benchmark (prints figures; not a test).

1. Round trip of an analysis that prints one line, on a warm worker: write the wrapper, run it in
   the evaluator's executor and sandbox, read the output back (what ``run_analysis`` costs the
   researcher), and the same plus its commit to a lab (``LabStore.record_analysis``). Median of
   ``--runs`` after an untimed warm-up run. Goal: <= 0.5 s.
2. Its effect on a concurrent scoring run: the vanilla baseline scored on ``--seeds`` seeds,
   alone and with analyses running back to back in a second thread; rounds alternate the two
   so machine load hits both alike; the paired ratio (with / alone) per round and its median.

    .venv/bin/python benchmarks/analysis.py [--runs 10] [--rounds 5] [--seeds 2]
        [--split-sizes 200,600,200,200] [--isolation bwrap]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.schemas import SessionManifest, utc_now  # noqa: E402
from experiments.store import LabStore  # noqa: E402
from sandbox.baseline_ideas import VANILLA_NAME, baseline_path  # noqa: E402
from sandbox.cache.task_cache import open_cache  # noqa: E402
from sandbox.execution.analysis import AnalysisOutput, run_analysis, write_wrapper  # noqa: E402
from sandbox.scoring.evaluator import Evaluator  # noqa: E402
from sandbox.tasks import SplitSizes, get_task  # noqa: E402

ONE_LINE = "print('one line')\n"


def analyse(evaluator: Evaluator, folder: Path) -> AnalysisOutput:
    """One analysis run as the loop makes it (agent/analysis_runs.py), without the session."""
    entry = write_wrapper(ONE_LINE, "analysis.py", folder)
    out = run_analysis(evaluator.executor, evaluator.request(entry, evaluator.card.weak_seeds[0]))
    if out.status != "ok" or "one line" not in out.output:
        raise SystemExit(f"the analysis did not run: {out.status}: {out.error}")
    return out


def round_trips(evaluator: Evaluator, runs: int, store: LabStore | None) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory(prefix="aar-bench-") as tmp:
        analyse(evaluator, Path(tmp))  # warm-up: starts the worker, not counted
        for k in range(runs):
            started = time.perf_counter()
            out = analyse(evaluator, Path(tmp))
            if store is not None:
                store.record_analysis("bench", f"{k + 1:04d}-one-line", {"output.txt": out.output, "code.py": ONE_LINE},
                                      None, f"analysis {k + 1}: ok")
            times.append(time.perf_counter() - started)
    return times


def scoring_seconds(evaluator: Evaluator, seeds: list[int]) -> float:
    started = time.perf_counter()
    result = evaluator.evaluate(baseline_path(VANILLA_NAME), seeds, compare_vanilla=False, charge=False)
    if result.status != "ok":
        raise SystemExit(f"scoring failed: {result.status}")
    return time.perf_counter() - started


def scoring_with_analyses(evaluator: Evaluator, seeds: list[int]) -> tuple[float, int]:
    """Scoring seconds while a second thread runs analyses back to back; and how many ran."""
    stop, count = threading.Event(), [0]

    def loop() -> None:
        with tempfile.TemporaryDirectory(prefix="aar-bench-") as tmp:
            while not stop.is_set():
                analyse(evaluator, Path(tmp))
                count[0] += 1

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    try:
        return scoring_seconds(evaluator, seeds), count[0]
    finally:
        stop.set()
        worker.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--task", default="wordnet-10")
    parser.add_argument("--split-sizes", default="200,600,200,200")
    parser.add_argument("--isolation", default="bwrap")
    args = parser.parse_args()
    cache = open_cache(get_task(args.task, SplitSizes.parse(args.split_sizes)), n_weak_seeds=args.seeds)
    evaluator = Evaluator(cache, isolation=args.isolation)
    seeds = list(range(args.seeds))
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} task={args.task} sizes={args.split_sizes} "
          f"isolation={args.isolation}")
    plain = round_trips(evaluator, args.runs, None)
    print(f"round trip, one-line analysis on a warm worker: median {statistics.median(plain):.3f}s of {args.runs} "
          f"(min {min(plain):.3f}s, max {max(plain):.3f}s); goal <= 0.5s", flush=True)
    with tempfile.TemporaryDirectory(prefix="aar-bench-lab-") as lab:
        store = LabStore.open(Path(lab))
        store.create_session(SessionManifest(
            session_id="bench", task=args.task, cache_key=evaluator.card.cache_key, proposer="benchmark", model=None,
            prompt_versions={}, seeds=seeds, package_versions={}, direction=None, created_at=utc_now()))
        committed = round_trips(evaluator, args.runs, store)
    print(f"... with its lab commit: median {statistics.median(committed):.3f}s (min {min(committed):.3f}s, "
          f"max {max(committed):.3f}s)")
    scoring_seconds(evaluator, seeds)  # warm-up of the scoring worker, not counted
    ratios = []
    for r in range(args.rounds):
        alone = scoring_seconds(evaluator, seeds)
        shared, ran = scoring_with_analyses(evaluator, seeds)
        ratios.append(shared / alone)
        print(f"round {r + 1}: scoring {len(seeds)} seeds alone {alone:.2f}s, with analyses {shared:.2f}s "
              f"({ran} analyses ran meanwhile), ratio {shared / alone:.2f}", flush=True)
    print(f"concurrent scoring: median paired ratio with/alone {statistics.median(ratios):.2f} over {args.rounds} "
          f"rounds")


if __name__ == "__main__":
    main()
