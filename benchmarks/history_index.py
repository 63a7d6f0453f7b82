"""History benchmark (prints figures; not a test): a lab with 1,000 recorded attempts, then the
response time of `aar ideas` and `aar leaderboard` (median of several runs).

Reported: recording rate, a cold index build, the index queries alone, each command in-process (index freshness check +
query + rendering, the part this package owns) and as a real `aar` process (adds interpreter and
CLI start-up, measured separately with `aar --help`), and a refresh after one new attempt.

    .venv/bin/python benchmarks/history_index.py [--attempts 1000] [--sessions 10] [--repeats 7]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.schemas import Attempt, SessionManifest, TokenUsage, new_attempt_id, utc_now  # noqa: E402
from experiments.store import LabStore  # noqa: E402
from sandbox.results import IdeaResult, PairedDiff, SeedResult, Stat  # noqa: E402

TASKS = ("wordnet-10", "rt-mpnet")
SEEDS = [0, 1, 2, 3, 4]


def _stat(values: list[float]) -> Stat:
    return Stat(mean=statistics.fmean(values), sd=statistics.stdev(values), n=len(values), values=values)


def synthetic_attempt(rng: random.Random, session: str, task: str, index: int) -> Attempt:
    """An attempt shaped like a real one: 5 seeds, a few KB of code, log and transcript."""
    name = f"{rng.choice(['aux-conf', 'probe-relabel', 'window', 'bootstrap', 'graph'])}-{index}"
    base = rng.uniform(-0.2, 0.9)
    failed = rng.random() < 0.15
    pgrs = [base + rng.gauss(0, 0.04) for _ in SEEDS]
    seeds = [SeedResult(seed=s, status="error" if failed else "ok", dev_acc=None if failed else 0.5 + p / 4,
                        pgr=None if failed else p, heldout_acc=None if failed else 0.5 + p / 4 - 0.003,
                        heldout_pgr=None if failed else p - 0.01, runtime_s=rng.uniform(2, 9),
                        error="ValueError: shapes" if failed else None, log_tail="epoch 20 loss 0.41\n" * 20)
             for s, p in zip(SEEDS, pgrs, strict=True)]
    ok = not failed
    result = IdeaResult(
        idea=name, task=task, cache_key="0123456789abcdef", status="error" if failed else "ok", seeds=seeds,
        pgr=_stat(pgrs) if ok else None, pgr_ci95=0.05 if ok else None,
        dev_acc=_stat([0.5 + p / 4 for p in pgrs]) if ok else None,
        heldout_acc=_stat([0.497 + p / 4 for p in pgrs]) if ok else None,
        heldout_pgr=_stat([p - 0.01 for p in pgrs]) if ok else None,
        vs_vanilla=PairedDiff(mean=base - 0.3, ci95=0.06, p_value=0.04, n=5) if ok else None,
        weak_acc_dev=0.52, ceiling_acc_dev=0.78, runtime_s=sum(s.runtime_s for s in seeds), isolation="bwrap")
    code = "import numpy as np\nfrom sandbox.runtime import train_head\n\n" + "\n".join(
        f"# step {k}: {rng.random():.6f}" for k in range(40 + index % 60)) + "\n\ndef run(ctx):\n    return 0\n"
    call = {"request": {"model": "claude", "messages": [{"role": "user", "content": "x" * 3000}]},
            "response": {"content": [{"type": "text", "text": "y" * 2000}], "usage": {"input_tokens": 3000}}}
    return Attempt(
        attempt_id=new_attempt_id(), session_id=session, index=index, name=name,
        rationale="Hypothesis: " + "weak labels are noisy near the boundary; " * 8, code=code,
        parent_id=None, result=result, status=result.status, log="seed log line\n" * 200, transcript=[call],
        usage=TokenUsage(input_tokens=3000, output_tokens=800, cost_usd=0.021), created_at=utc_now())


def build_lab(path: Path, attempts: int, sessions: int, rng: random.Random) -> float:
    """Record ``attempts`` attempts spread over ``sessions`` sessions; returns attempts per second."""
    store = LabStore.open(path)
    ids = []
    for k in range(sessions):
        sid = f"bench-{k:02d}"
        ids.append(sid)
        store.create_session(SessionManifest(
            session_id=sid, task=TASKS[k % len(TASKS)], cache_key="0123456789abcdef", proposer="anthropic",
            model="claude", prompt_versions={}, seeds=SEEDS, package_versions={}, direction=None,
            budgets={"split_sizes": "1000,4000,1000,1000"}, created_at=utc_now()))
    started = time.perf_counter()
    for n in range(attempts):
        sid = ids[n % sessions]
        index = n // sessions + 1
        store.record_attempt(synthetic_attempt(rng, sid, TASKS[(n % sessions) % len(TASKS)], index))
        if (n + 1) % 200 == 0:
            print(f"  recorded {n + 1} attempts", flush=True)
    return attempts / (time.perf_counter() - started)


def timed(call: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def in_process(args: list[str], repeats: int) -> list[float]:
    import agent.cli.history  # noqa: F401 - registers the commands
    from agent.cli import app
    from agent.cli.common import run_app

    times = []
    for _ in range(repeats):
        sys.argv = ["aar", *args]
        with contextlib.redirect_stdout(io.StringIO()):
            started = time.perf_counter()
            code = run_app(app)
            times.append(time.perf_counter() - started)
        if code != 0:
            raise SystemExit(f"aar {' '.join(args)} exited {code}")
    return times


def as_process(args: list[str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True,
                              cwd=ROOT)
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise SystemExit(f"aar {' '.join(args)}: {proc.stderr.strip()}")
    return times


def ms(times: list[float]) -> str:
    return f"median {1000 * statistics.median(times):8.1f} ms  (min {1000 * min(times):.1f}, n={len(times)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--process-repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("COLUMNS", "160")
    with tempfile.TemporaryDirectory(prefix="aar-bench-lab-") as tmp:
        lab = Path(tmp) / "lab"
        os.environ["AAR_LAB"] = str(lab)
        print(f"recording {args.attempts} attempts in {args.sessions} sessions ...")
        rate = build_lab(lab, args.attempts, args.sessions, random.Random(0))
        print(f"record_attempt: {rate:.1f} attempts/s ({1000 / rate:.1f} ms each)")
        store = LabStore(lab)
        store.index.path.unlink(missing_ok=True)
        started = time.perf_counter()
        store.index.refresh()
        print(f"cold index build ({args.attempts} attempts): {1000 * (time.perf_counter() - started):.0f} ms")
        print(f"\nindex queries only (freshness check + SQL), {args.repeats} runs each:")
        for label, query in (("ideas (newest 50)", lambda: store.index.ideas(limit=50)),
                             ("ideas (all, by PGR)", lambda: store.index.ideas(sort="pgr")),
                             (f"leaderboard {TASKS[0]} (top 20)", lambda: store.index.leaderboard(TASKS[0]))):
            print(f"  {label:45s} {ms(timed(query, args.repeats))}")
        commands = {
            "aar ideas": ["ideas"],
            "aar ideas --sort pgr --limit 0 (all rows)": ["ideas", "--sort", "pgr", "--limit", "0"],
            f"aar leaderboard --task {TASKS[0]}": ["leaderboard", "--task", TASKS[0]],
            "aar sessions": ["sessions"],
        }
        print(f"\nin-process (freshness check + query + render), {args.repeats} runs each:")
        for label, argv in commands.items():
            print(f"  {label:45s} {ms(in_process(argv, args.repeats))}")
        store.record_attempt(synthetic_attempt(random.Random(1), "bench-00", TASKS[0], 10_000))
        print(f"  {'aar ideas, first call after a new attempt':45s} {ms(in_process(['ideas'], 1))}")
        print(f"\nas a process ({args.process_repeats} runs each):")
        print(f"  {'aar --help (start-up only)':45s} {ms(as_process(['--help'], args.process_repeats))}")
        for label in ("aar ideas", f"aar leaderboard --task {TASKS[0]}"):
            print(f"  {label:45s} {ms(as_process(commands[label], args.process_repeats))}")


if __name__ == "__main__":
    main()
