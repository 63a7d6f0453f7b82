"""Offline-proposer benchmark (prints figures; not a test).

Runs a research session with the offline proposer (or reads an existing one with --session)
and prints experiments per hour on this machine, and the best attempt's dev and held-out PGR
next to the best built-in baseline's on the same seeds.

    .venv/bin/python benchmarks/offline_research.py [--attempts 20] [--task wordnet-10] [--researchers 2]
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
from experiments.schemas import RunConfig  # noqa: E402
from experiments.store import LabStore  # noqa: E402


def summarise(lab: Path, session_ids: list[str]) -> None:
    """Experiments/hour over the sessions (one, or a group of researchers sharing the cores):
    from the first session's start to the last attempt's end."""
    store = LabStore.open(lab)
    manifests = [store.manifest(s) for s in session_ids]
    attempts = [a for s in session_ids for a in store.attempts(s)]
    start = min(dt.datetime.fromisoformat(m.created_at) for m in manifests)
    ends = sorted(dt.datetime.fromisoformat(a.created_at) for a in attempts)
    hours = (ends[-1] - start).total_seconds() / 3600
    who = f"session={session_ids[0]}" if len(session_ids) == 1 else f"researchers={len(session_ids)}"
    print(f"cpus={os.cpu_count()} {who} attempts={len(attempts)} "
          f"wall={hours * 60:.1f} min -> {len(attempts) / hours:.0f} experiments/hour "
          f"({len(manifests[0].seeds)} seeds each, first attempt includes no cache build)")
    print(f"first attempt ended {(ends[0] - start).total_seconds():.1f} s after the start "
          "(it includes the warm worker's start)")
    for session_id in session_ids:
        rows = store.index.ideas(session=session_id, sort="index")
        best = max((r for r in rows if r.pgr is not None), key=lambda r: r.pgr)
        tag = "" if len(session_ids) == 1 else f"{session_id[-2:]}: "
        print(f"{tag}best attempt #{best.index} ({best.name}): dev PGR {best.pgr:+.3f} ± "
              f"{best.pgr_ci95 or 0:.3f}, held-out PGR {best.heldout_pgr:+.3f}")
    base = best_baseline(manifests[0]) or {}
    if base:
        print(f"best built-in baseline ({base['name']}): dev PGR {base['pgr']:+.3f}, "
              f"held-out PGR {base.get('heldout_pgr') or float('nan'):+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=20)
    parser.add_argument("--task", default="wordnet-10")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--researchers", type=int, default=1,
                        help="researchers at once (agent.parallel), sharing the cores; --attempts each")
    parser.add_argument("--session")
    parser.add_argument("--lab", type=Path)
    args = parser.parse_args()
    if args.session:
        store = LabStore.open(args.lab)
        summarise(args.lab, [store.resolve_session(args.session)])
        return
    with tempfile.TemporaryDirectory(prefix="aar-bench-lab-") as tmp:
        config = ResearchConfig(task=args.task, seeds=args.seeds, lab=Path(tmp), run=RunConfig(
            isolation=os.environ.get("AAR_BENCH_ISOLATION", "bwrap"), budgets=Budgets(max_attempts=args.attempts)))
        # warm the cache and the baseline summary first, so only research is timed (and the
        # search starts from the best baseline, as every session after the first on a cache)
        from agent.session_setup import baseline_summary, open_session

        warm = open_session(config.model_copy(update={"budgets": Budgets(max_attempts=0)}))
        baseline_summary(warm.evaluator, list(range(args.seeds)))
        if args.researchers > 1:
            from agent.parallel import run_parallel

            group = run_parallel(config, args.researchers)
            summarise(Path(tmp), [r.session_id for r in group.researchers])
        else:
            summarise(Path(tmp), [run_research(config, Reporter()).session_id])


if __name__ == "__main__":
    main()
