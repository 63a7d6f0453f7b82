"""Progress for long cache builds: a rich bar on a terminal, one line per step when piped."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(label: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    if not sys.stderr.isatty():  # logs and CI: a line when a step starts and one when it ends
        started, cpu = time.monotonic(), _cpu_s()
        print(f"aar: {label} ({total}) ...", file=sys.stderr, flush=True)
        yield lambda n: None
        print(f"aar: {label} done in {time.monotonic() - started:.1f}s (in-process CPU {_cpu_s() - cpu:.1f}s)",
              file=sys.stderr, flush=True)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _cpu_s() -> float:
    """CPU seconds of this process, all its threads: on a shared machine the wall time of an
    in-process step (features, teachers) says little, its CPU time what it costs. Work done in
    sandboxed processes (the baselines) is not in it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
