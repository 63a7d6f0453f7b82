"""Ctrl-C for commands that run seeds outside a research session (``aar eval``, ``aar replay``).

The same contract as ``aar research``: the first press lets the seeds in flight finish (and the
command stop after them), the second kills them (``Executor.cancel``) and raises
``KeyboardInterrupt``. A press while no seed runs stops at once, unless the command is inside a
``protected`` section (a lab write), where it waits for the section's end.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from sandbox.execution.base import Executor


class SeedInterrupts:
    """A SIGINT handler for one command; ``with SeedInterrupts(say) as stop: ...``.

    ``say`` gets one line per press (what happens next); ``stop.requested`` tells a loop over
    several runs not to start the next one."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.presses = 0
        self._executor: Executor | None = None
        self._what = ""
        self._protected = 0
        self._deferred = False

    @property
    def requested(self) -> bool:
        """Ctrl-C was pressed: start nothing new."""
        return self.presses > 0

    @contextmanager
    def seeds(self, executor: Executor, what: str) -> Iterator[None]:
        """Seeds of ``what`` run on ``executor`` inside this block: a press finishes them, a second kills them."""
        self._executor, self._what = executor, what
        try:
            yield
        finally:
            self._executor = None

    @contextmanager
    def protected(self) -> Iterator[None]:
        """A section that must not be cut short (a lab write): a press inside it takes effect at its end."""
        self._protected += 1
        try:
            yield
        finally:
            self._protected -= 1
            if not self._protected and self._deferred:
                self._deferred = False
                raise KeyboardInterrupt

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.presses += 1
        if self._executor is not None and self.presses == 1:
            self.say(f"Ctrl-C: finishing the seeds in flight ({self._what}), then stopping "
                     "(press again to kill them)")
            return
        if self._executor is not None:
            self.say(f"Ctrl-C again: killing the seeds in flight ({self._what})")
            self._executor.cancel()
        if self._protected:
            self.say("Ctrl-C: stopping once the lab write in progress is done")
            self._deferred = True
            return
        raise KeyboardInterrupt

    def __enter__(self) -> SeedInterrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)
