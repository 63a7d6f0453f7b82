"""Offline-proposer benchmark (prints figures; not a test).

Runs a research session with the offline proposer (or reads an existing one with --session)
and prints experiments per hour on this machine, and the best attempt's dev and held-out PGR
next to the best built-in baseline's on the same seeds.

    .venv/bin/python benchmarks/offline_research.py [--attempts 20] [--task wordnet-10]
    .venv/bin/python benchmarks/offline_research.py --session ID --lab PATH
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.budget import Budgets  # noqa: E402
from agent.progress import Reporter  # noqa: E402
from agent.research import run_research  # noqa: E402
from agent.session_setup import ResearchConfig  # noqa: E402
from experiments.report import best_baseline  # noqa: E402
from experiments.store import LabStore  # noqa: E402


def summarise(lab: Path, session_id: str) -> None:
    store = LabStore.open(lab)
    manifest = store.manifest(session_id)
    attempts = store.attempts(session_id)
    times = [dt.datetime.fromisoformat(a.created_at) for a in attempts]
    start = dt.datetime.fromisoformat(manifest.created_at)
    hours = (max(times) - start).total_seconds() / 3600
    rows = store.index.ideas(session=session_id, sort="index")
    best = max((r for r in rows if r.pgr is not None), key=lambda r: r.pgr)
    base = best_baseline(manifest) or {}
    print(f"cpus={os.cpu_count()} session={session_id} attempts={len(attempts)} "
          f"wall={hours * 60:.1f} min -> {len(attempts) / hours:.0f} experiments/hour "
          f"({len(manifest.seeds)} seeds each, first attempt includes no cache build)")
    print(f"best attempt #{best.index} ({best.name}): dev PGR {best.pgr:+.3f} ± {best.pgr_ci95 or 0:.3f}, "
          f"held-out PGR {best.heldout_pgr:+.3f}")
    if base:
        print(f"best built-in baseline ({base['name']}): dev PGR {base['pgr']:+.3f}, "
              f"held-out PGR {base.get('heldout_pgr') or float('nan'):+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=20)
    parser.add_argument("--task", default="wordnet-10")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--session")
    parser.add_argument("--lab", type=Path)
    args = parser.parse_args()
    if args.session:
        store = LabStore.open(args.lab)
        summarise(args.lab, store.resolve_session(args.session))
        return
    with tempfile.TemporaryDirectory(prefix="aar-bench-lab-") as tmp:
        config = ResearchConfig(task=args.task, seeds=args.seeds, lab=Path(tmp),
                                isolation=os.environ.get("AAR_BENCH_ISOLATION", "bwrap"),
                                budgets=Budgets(max_attempts=args.attempts))
        # warm the cache and the baseline summary first, so only research is timed (and the
        # search starts from the best baseline, as every session after the first on a cache)
        from agent.session_setup import baseline_summary, open_session

        warm = open_session(config.model_copy(update={"budgets": Budgets(max_attempts=0)}))
        baseline_summary(warm.evaluator, list(range(args.seeds)))
        outcome = run_research(config, Reporter())
        summarise(Path(tmp), outcome.session_id)


if __name__ == "__main__":
    main()
