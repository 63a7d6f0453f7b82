"""Cold-start benchmark (prints figures; not a test): the time from nothing to the first scored
attempt of `aar research --max-attempts 2` (what `./dev run` runs), on an empty cache and lab.

Each run gets a fresh ``AAR_CACHE_DIR`` and lab under ``--work``; every output line is stamped
with the seconds since the start, so the piped progress lines give each step (strong features,
weak teachers and ceilings, vanilla reference or built-in baselines) and its in-process CPU
seconds. The load average is printed before and after each run: on a shared machine, compare
runs taken back to back (``--src`` points at another checkout to time older code the same way).

    .venv/bin/python benchmarks/cold_start.py --work DIR [--runs 3] [--full] [--src CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHOWN = re.compile(r"aar: |attempt \d .* ok|setup took")
FIRST = re.compile(r"attempt 1 .* ok")


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def one_run(src: Path, work: Path, full: bool) -> float | None:
    """Seconds to the first scored attempt (None if none came); stops there unless ``full``."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, "AAR_CACHE_DIR": str(work / "cache"), "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "agent.cli", "research", "--max-attempts", "2", "--lab", str(work / "lab"), "--plain"]
    print(f"  {load()} at the start", flush=True)
    started, first = time.monotonic(), None
    proc = subprocess.Popen(cmd, cwd=src, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.monotonic() - started
        if SHOWN.search(line):
            print(f"  {now:7.1f} {line.rstrip()}", flush=True)
        if first is None and FIRST.search(line):
            first = now
            print(f"  {load()} at the first scored attempt", flush=True)
            if not full:
                os.killpg(proc.pid, signal.SIGTERM)
                break
    proc.wait()
    return first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True, help="Folder for the runs' caches and labs.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="Let each run finish (deferred baselines too).")
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1],
                        help="Checkout whose code runs (default: this one).")
    args = parser.parse_args()
    times = []
    for n in range(args.runs):
        print(f"run {n + 1}:", flush=True)
        first = one_run(args.src.resolve(), args.work.resolve() / f"run{n + 1}", args.full)
        print(f"  first scored attempt: {'none' if first is None else f'{first:.1f} s'}", flush=True)
        if first is not None:
            times.append(first)
    if times:
        print(f"median of {len(times)}: {statistics.median(times):.1f} s (goal ≤ 90 s on 2 cores)")


if __name__ == "__main__":
    main()
