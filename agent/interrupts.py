"""Ctrl-C during a research session.

First press: a model call in flight is cancelled at once (nothing was scored yet); an attempt in
flight is finished and recorded, then the session stops; between steps it just stops. Second
press: the attempt in flight is abandoned (its seeds are killed) and recorded as such.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from agent.progress import Reporter

if TYPE_CHECKING:
    from agent.loop import LoopTools

STOP_REASON = "interrupted (Ctrl-C)"


@contextmanager
def graceful_interrupts(tools: LoopTools, reporter: Reporter, enabled: bool = True) -> Iterator[None]:
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = {"n": 0}

    def handler(signum: int, frame: object) -> None:
        presses["n"] += 1
        if tools.call_in_flight:
            tools.tracker.request_stop(f"{STOP_REASON}: the model call in flight was cancelled", "interrupted")
            reporter.line("Ctrl-C: cancelling the model call in flight and stopping")
            raise KeyboardInterrupt
        spec = tools.ctx.in_flight
        tools.tracker.request_stop(STOP_REASON if spec is None else f"{STOP_REASON}: stopped after the attempt "
                                   "in flight", "interrupted")
        if spec is None:
            reporter.line("Ctrl-C: stopping before the next step")
        elif presses["n"] == 1:
            reporter.line(f"Ctrl-C: finishing the attempt in flight ({spec.name[:60]}), then stopping "
                          "(press again to abandon it)")
        else:
            reporter.line(f"Ctrl-C again: abandoning the attempt in flight ({spec.name[:60]})")
            tools.ctx.evaluator.executor.cancel()  # kills the seeds in flight
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
