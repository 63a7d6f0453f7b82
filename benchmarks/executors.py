"""Executor overhead benchmark (prints figures; not a test): the same 10 idea evaluations (the
built-in baselines, N seeds each) on the ``local`` executor and on ``ray`` on this machine.

Rounds alternate local / ray so both see the same machine load; each round times all 10
evaluations (seeds scored, vanilla comparison off). Ray's cluster start, its first shipment of
the public cache and its worker warm-up happen in an untimed warm-up round, reported apart.
Prints per-round seconds, the medians and the ratio ray / local (goal: ≤ 1.2×).

    .venv/bin/python benchmarks/executors.py [--rounds 3] [--seeds 2] [--split-sizes 200,600,200,200]
        [--ray-address local|auto|HOST:PORT]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.baseline_ideas import baseline_files  # noqa: E402
from sandbox.cache.task_cache import open_cache  # noqa: E402
from sandbox.execution.base import ExecutorConfig, ExecutorOptions
from sandbox.execution.registry import get_executor  # noqa: E402
from sandbox.scoring.evaluator import Evaluator  # noqa: E402
from sandbox.tasks import SplitSizes, get_task  # noqa: E402


def timed_round(evaluator: Evaluator, ideas: list[Path], seeds: list[int]) -> tuple[float, list[str]]:
    started = time.monotonic()
    statuses = [evaluator.evaluate(idea, seeds, compare_vanilla=False, charge=False).status for idea in ideas]
    return time.monotonic() - started, statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--task", default="wordnet-10")
    parser.add_argument("--split-sizes", default="200,600,200,200")
    parser.add_argument("--ray-address", default="local")  # a private cluster, not a neighbour's
    parser.add_argument("--isolation", default="bwrap")
    args = parser.parse_args()
    cache = open_cache(get_task(args.task, SplitSizes.parse(args.split_sizes)), n_weak_seeds=args.seeds)
    ideas, seeds = baseline_files()[:10], list(range(args.seeds))
    started = time.monotonic()
    ray_executor = get_executor(ExecutorOptions(
        ExecutorConfig(name="ray", ray_address=args.ray_address), on_notice=print))
    evaluators = {"local": Evaluator(cache, isolation=args.isolation),
                  "ray": Evaluator(cache, isolation=args.isolation, executor=ray_executor)}
    warm, statuses = timed_round(evaluators["ray"], ideas[:1], seeds)
    print(f"ray: connect/start {time.monotonic() - started - warm:.1f}s, warm-up (ships the public "
          f"cache, starts workers) {warm:.1f}s, status {statuses}")
    times: dict[str, list[float]] = {"local": [], "ray": []}
    for r in range(args.rounds):
        for name, evaluator in evaluators.items():
            seconds, statuses = timed_round(evaluator, ideas, seeds)
            bad = [s for s in statuses if s != "ok"]
            times[name].append(seconds)
            print(f"round {r + 1} {name}: {seconds:.1f}s for {len(ideas)} ideas x {len(seeds)} seeds"
                  + (f" ({len(bad)} not ok: {sorted(set(bad))})" if bad else ""), flush=True)
    local, ray = statistics.median(times["local"]), statistics.median(times["ray"])
    print(f"cpus={os.cpu_count()} task={args.task} sizes={args.split_sizes} isolation={args.isolation} "
          f"rounds={args.rounds}: median local {local:.1f}s, median ray {ray:.1f}s, "
          f"ratio ray/local {ray / local:.2f}x (goal <= 1.2x)")


if __name__ == "__main__":
    main()
