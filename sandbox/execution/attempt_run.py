"""One attempt's seeds on a warm worker: a gate that says when a seed may start, the parent's
view of each seed, and the loop that starts seeds as slots free up, polices the clock, memory
and result caps, and collects each seed when its child ends."""

from __future__ import annotations

import queue
import secrets
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sandbox.execution.run_output import CANCELLED, LogCapture, ResultCapture, RunOutput, collect
from sandbox.isolation.base import Limits, SeedJob
from sandbox.isolation.cgroups import RunCgroup
from sandbox.runtime.worker import SeedPlan

TICK_S = 0.02
ABANDONED = "abandoned: the run was cancelled (Ctrl-C)"
SLOTS_LOST = "not run: its worker could not wipe a finished seed's scratch (rerun the attempt)"
WORKER_DIED = "worker"  # the event an attempt gets when its worker's event stream ends


@dataclass
class Gate:
    """When a seed may start: a free slot (shared by every evaluator), fewer than ``parallel``
    of this attempt running, and no cancel."""

    slots: threading.Semaphore
    parallel: int
    cancelled: threading.Event
    running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def try_enter(self) -> bool:
        with self.lock:
            if self.running >= self.parallel or not self.slots.acquire(blocking=False):
                return False
            self.running += 1
            return True

    def leave(self) -> None:
        with self.lock:
            self.running -= 1
            self.slots.release()


@dataclass
class SeedState:
    """The parent's view of one seed while it runs."""

    job: SeedJob
    key: str  # unique in its worker's life: the attempt's token and the seed
    # The seed's files' names: the key plus a secret, so no seed can guess another's from its own
    name: str = field(default_factory=lambda: secrets.token_hex(16))
    slot: str | None = None
    result: ResultCapture | None = None
    log: LogCapture | None = None
    started: float | None = None
    oom_before: int = 0
    stopped: RunOutput | None = None  # set when the parent stopped it (timeout, caps)
    output: RunOutput | None = None


def memory_killed(limits: Limits) -> RunOutput:
    return RunOutput("killed", error=f"idea process killed: over the {limits.memory_bytes >> 20} MiB memory limit "
                     "(counted for the whole run: every process, tmpfs and memory files)")


class SeedHost(Protocol):
    """What an attempt needs of the worker its seeds run on (sandbox.execution.supervisor.WarmWorker)."""

    limits: Limits
    slot_cgs: dict[str, RunCgroup | None]

    def take_slot(self, key: str) -> str | None: ...
    def exhausted(self) -> bool: ...
    def seed_plan(self, state: SeedState, idea_copy: Path) -> SeedPlan: ...
    def send(self, line: str) -> None: ...
    def release_seed_files(self, state: SeedState) -> None: ...
    def abandon(self, key: str) -> None: ...


class AttemptRun:
    """One attempt's seeds on a worker: start them as slots free up, watch the clock and the
    caps, collect each when its child ends."""

    def __init__(self, worker: SeedHost, idea_copy: Path, states: list[SeedState], gate: Gate,
                 events: queue.Queue) -> None:
        self.worker, self.idea_copy, self.gate, self.events = worker, idea_copy, gate, events
        self.pending = list(states)
        self.held: dict[str, SeedState] = {}

    def drive(self) -> None:
        try:
            while self.pending or self.held:
                if self.gate.cancelled.is_set():
                    for state in self.pending:
                        state.output = RunOutput("killed", error=CANCELLED)
                    self.pending = []
                self._start_what_fits()
                try:
                    key, code = self.events.get(timeout=TICK_S)
                except queue.Empty:
                    key, code = "", None
                if key == WORKER_DIED:
                    return  # what is left is reported as the worker's failure
                if key in self.held:
                    self._finish(self.held.pop(key), code)
                self._police()
        finally:
            for state in self.held.values():
                self._kill(state)
                self.worker.release_seed_files(state)
                self.gate.leave()
                self.worker.abandon(state.key)
            self.held = {}

    def _start_what_fits(self) -> None:
        while self.pending and self.gate.try_enter():
            state = self.pending[0]
            state.slot = self.worker.take_slot(state.key)
            if state.slot is None:  # every slot busy (other attempts) or being wiped
                self.gate.leave()
                if self.worker.exhausted():
                    for waiting in self.pending:
                        waiting.output = RunOutput("error", error=SLOTS_LOST)
                    self.pending = []
                return
            self.pending.pop(0)
            self.held[state.key] = state
            plan = self.worker.seed_plan(state, self.idea_copy)
            state.result.start()  # type: ignore[union-attr]
            state.log.start()  # type: ignore[union-attr]
            cg = self.worker.slot_cgs.get(state.slot)
            state.oom_before = cg.oom_kills() if cg is not None else 0
            state.started = time.monotonic()
            self.worker.send(f"start {state.key} {plan.model_dump_json()}")

    def _police(self) -> None:
        now, limits = time.monotonic(), self.worker.limits
        for state in self.held.values():
            if state.stopped is None and self.gate.cancelled.is_set():
                state.stopped = RunOutput("killed", error=ABANDONED)
            elif state.stopped is None and self._oom_fired(state):
                # the kernel killed one of its processes for the run's memory: the seed is over,
                # even where its main process lives on (waiting on children that are gone)
                state.stopped = memory_killed(limits)
            elif state.stopped is None and state.started is not None and now - state.started > limits.time_s:
                state.stopped = RunOutput("timeout", error=f"exceeded the {limits.time_s:g}s time budget")
            elif state.stopped is None and state.result is not None and state.result.overflow:
                state.stopped = _too_large(state.result)
            if state.stopped is not None:
                self._kill(state)

    def _oom_fired(self, state: SeedState) -> bool:
        cg = self.worker.slot_cgs.get(state.slot or "")
        return state.started is not None and cg is not None and cg.oom_kills() > state.oom_before

    def _kill(self, state: SeedState) -> None:
        cg = self.worker.slot_cgs.get(state.slot or "")
        if cg is not None:
            cg.kill_all()
        self.worker.send(f"kill {state.key}")

    def _finish(self, state: SeedState, code: int) -> None:
        """The seed's child ended: kill what it left, stop reading, collect, free its slot. The
        permit and the slot come back on every path: a result that breaks the parser (or
        anything else here that raises) must not leave a later evaluation waiting forever."""
        runtime = time.monotonic() - (state.started or time.monotonic())
        try:
            output = self._outcome(state, code)
        except Exception as exc:  # noqa: BLE001 - the seed's failure, never the harness's
            output = RunOutput("invalid", error=f"unreadable result ({type(exc).__name__}: {str(exc)[:200]})")
        finally:
            self.gate.leave()
            self.worker.send(f"clean {state.key}")  # the slot is free again once its scratch is wiped
        with suppress(Exception):
            output.log_tail = state.log.text()  # type: ignore[union-attr]
        output.runtime_s = runtime
        state.output = output

    def _outcome(self, state: SeedState, code: int) -> RunOutput:
        cg = self.worker.slot_cgs.get(state.slot or "")
        if cg is not None:
            cg.kill_all()  # what the child left behind (setsid daemons) goes with it
        self.worker.release_seed_files(state)
        if state.stopped is None and cg is not None and cg.oom_kills() > state.oom_before:
            state.stopped = memory_killed(self.worker.limits)
        if state.stopped is None and state.result.overflow:  # type: ignore[union-attr]
            state.stopped = _too_large(state.result)  # type: ignore[arg-type]
        if state.stopped is not None:
            return state.stopped
        files, problem = state.result.frames()  # type: ignore[union-attr]
        return RunOutput("invalid", error=problem) if files is None else collect(files, code)


def _too_large(result: ResultCapture) -> RunOutput:
    return RunOutput("invalid", error=f"the result is larger than {result.cap} bytes (predictions.npy over its cap)")
