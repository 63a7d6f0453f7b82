"""Warm workers: one supervised sandboxed process runs the seeds of attempts, one RunOutput each.

A worker (sandbox.runtime.worker) is one sandboxed process that imports torch once and forks a
child per seed. It is laid out in slots, each a uid, a cgroup (memory, pids, CPU quota) and a
size-capped scratch of its own; a seed runs in a free slot and, once it has ended, its slot's
leftovers are killed (cgroup) and its scratch wiped by its uid before the slot takes another
seed. Per seed the parent makes a private weak-teacher copy and a result and a log FIFO, reads
them (capped), keeps the wall clock and stops reading when the seed's child ends.

How workers are kept between attempts (or not) is sandbox.execution.pool's business; how one
attempt's seeds are started, policed and collected is sandbox.execution.attempt_run's, and how
their memory limits are sized is sandbox.execution.memory_ledger's.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.errors import HarnessError
from sandbox.execution.attempt_run import WORKER_DIED, AttemptRun, Gate, SeedState
from sandbox.execution.memory_ledger import LEDGER, WORKER_MEMORY
from sandbox.execution.run_output import LogCapture, ResultCapture, RunOutput
from sandbox.isolation.base import (
    SANDBOX_SETUP_FAILED,
    Isolation,
    Limits,
    RunDirs,
    RunPlan,
    SeedJob,
    child_rlimits,
    copy_weak_teacher,
    idea_file_name,
    set_rlimits,
)
from sandbox.isolation.cgroups import (
    CONTROLLERS,
    STRICT_ENV,
    RunCgroup,
    RunLimits,
    sweep_stale,
)
from sandbox.isolation.devices import Passthrough
from sandbox.runtime.context import JobSpec
from sandbox.runtime.worker import SeedPlan

WORKER_PIDS = 64
READY_TIMEOUT_S = 120.0
_SPAWNER = ThreadPoolExecutor(1, thread_name_prefix="worker-spawner")  # lives as long as the process


def _cgroups(limits: Limits, slots: list[str], self_join: bool
             ) -> tuple[RunCgroup | None, dict[str, RunCgroup | None]]:
    """The worker's cgroup and one nested per slot; where children cannot join their own (a
    worker of one slot), the worker's cgroup carries that slot's limits."""
    n = len(slots)
    # The worker's group weighs as much CPU as its slots may use together, so a worker of one
    # busy seed never gets the same share as one of several (each slot's quota still caps it).
    top = RunLimits(memory_bytes=n * limits.memory_bytes + WORKER_MEMORY, pids=n * limits.processes + WORKER_PIDS,
                    weight_cores=float(n * max(1, limits.threads)))
    slot_limits = RunLimits(memory_bytes=limits.memory_bytes, pids=limits.processes, cpus=float(max(1, limits.threads)))
    name = f"attempt-{os.getpid()}-{secrets.token_hex(6)}"  # the pid: sweep_stale finds orphans by it
    try:
        sweep_stale()
        worker_cg = RunCgroup.create(name, top if self_join else slot_limits)
        if worker_cg is None or not self_join:
            return worker_cg, {s: worker_cg if not self_join else None for s in slots}
        return worker_cg, {s: RunCgroup.create(s, slot_limits, parent=worker_cg) for s in slots}
    except OSError as exc:
        if limits.strict:
            raise HarnessError(f"cannot make the run's cgroups ({exc}); unset {STRICT_ENV} to run without") from exc
        return None, {s: None for s in slots}


class WarmWorker:
    """One sandboxed worker process with ``n_slots`` slots, serving the seeds of any number of
    attempts (several at once) until closed. Thread-safe."""

    def __init__(self, public_dir: Path, limits: Limits, isolation: Isolation, n_slots: int,
                 passthrough: Passthrough | None = None) -> None:
        # Scaled down where the machine could not hold every live worker's limits at once.
        limits, self.memory_note = LEDGER.reserve(id(self), limits, n_slots)
        if self.memory_note:
            logging.getLogger(__name__).warning(self.memory_note)
        self.limits, self.isolation = limits, isolation
        root = Path(tempfile.mkdtemp(prefix="aar-run-"))
        os.chmod(root, 0o755)  # slots' uids traverse it to their own (private) entries
        slots = [f"k{i}" for i in range(n_slots)]
        self.plan = RunPlan(public_dir=public_dir, slots=slots, limits=limits, dirs=RunDirs(root),
                            passthrough=passthrough)
        self.worker_cg: RunCgroup | None = None
        self.slot_cgs: dict[str, RunCgroup | None] = {}
        self._lock = threading.Lock()
        self._free = list(slots)
        self._queues: dict[str, queue.Queue] = {}  # seed key -> its attempt's events
        self._slot_of: dict[str, str] = {}  # seed key -> slot, until its scratch is wiped
        self._abandoned: set[str] = set()  # seeds nobody waits for: cleaned when their child ends
        self.ready, self.dead = threading.Event(), threading.Event()
        self.retired = False  # takes no new seed (a slot could not be wiped); closed when idle
        self.users = 0  # attempts holding it (the pool's count)
        self.proc: subprocess.Popen | None = None
        self._send_lock = threading.Lock()
        self._owned = _Owned(root, ledger_key=id(self))
        self._finalizer = weakref.finalize(self, _remove, self._owned)
        try:
            self.worker_cg, self.slot_cgs = _cgroups(limits, slots, isolation.self_join)
            self._owned.cgroups = [self.worker_cg, *self.slot_cgs.values()]
            self.plan.cgroup_procs = {s: [str(p) for p in cg.procs_files] for s, cg in self.slot_cgs.items()
                                      if cg is not None and cg is not self.worker_cg}
            isolation.prepare(self.plan)
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        argv = self.isolation.command(self.plan)  # first: it may open descriptors extra_fds hands over
        extra = self.isolation.extra_fds(self.plan)
        worker_cg, limits = self.worker_cg, self.limits

        def preexec() -> None:
            set_rlimits(limits, runtime_bytes=WORKER_MEMORY)
            if worker_cg is not None:  # before exec: every process of the worker is born inside
                worker_cg.add(os.getpid())

        err_r, err_w = os.pipe()
        try:
            # bwrap's --die-with-parent follows the thread that started it: a worker that
            # outlives this attempt must be started by a thread that lives as long as the process.
            self.proc = _SPAWNER.submit(
                subprocess.Popen, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err_w,
                env=self.isolation.environment(self.plan), cwd=self.isolation.cwd(self.plan), pass_fds=extra,
                start_new_session=True, preexec_fn=preexec,
            ).result()
        finally:
            os.close(err_w)
            for fd in extra:
                os.close(fd)
        self.log = LogCapture(err_r)
        self.log.start()
        # The reader holds the worker weakly: a worker nobody holds is collected, and its
        # finalizer stops the process.
        threading.Thread(target=_pump, args=(self.proc.stdout, weakref.ref(self)), daemon=True,
                         name="worker-events").start()
        self._owned.proc = self.proc

    def _event(self, verb: str, key: str, code: str) -> None:
        if verb == "ready":
            self.ready.set()
        elif verb == "cleaned":
            self._cleaned(key, code)
        elif verb == "exit":
            with self._lock:
                target = self._queues.get(key)
                orphan = key in self._abandoned
            if orphan:
                self.send(f"clean {key}")
            elif target is not None:
                target.put((key, int(code) if code.lstrip("-").isdigit() else -1))

    def abandon(self, key: str) -> None:
        """Nobody waits for seed ``key`` any more (its attempt ended early): clean its slot as
        soon as its child has ended, so the slot is not lost to later attempts."""
        with self._lock:
            self._queues.pop(key, None)
            if key not in self._slot_of:
                return
            self._abandoned.add(key)
        self.send(f"clean {key}")  # ignored while the child still runs; sent again on its exit

    def _ended(self) -> None:
        self.dead.set()
        with self._lock:
            targets = {id(q): q for q in self._queues.values()}
        for target in targets.values():
            target.put((WORKER_DIED, None))

    def _cleaned(self, key: str, code: str) -> None:
        with self._lock:
            slot = self._slot_of.pop(key, None)
            self._abandoned.discard(key)
            if slot is None:
                return
            if code == "0":
                self._free.append(slot)
            else:  # something was left in the scratch: no later seed may find it (slot lost)
                self.retired = True

    def usable(self) -> bool:
        return not (self.retired or self.dead.is_set()) and self.proc is not None and self.proc.poll() is None

    def send(self, line: str) -> None:
        with self._send_lock, suppress(OSError, ValueError):
            self.proc.stdin.write(f"{line}\n".encode())  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]

    def wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready.is_set() and not self.dead.is_set() and time.monotonic() < deadline:
            self.ready.wait(0.05)
        return self.ready.is_set() and not self.dead.is_set()

    def take_slot(self, key: str) -> str | None:
        """A free slot for seed ``key`` (a retired worker still finishes the attempts it holds
        on its clean slots; the pool gives new attempts a new worker)."""
        with self._lock:
            if not self._free:
                return None
            slot = self._slot_of[key] = self._free.pop(0)
            return slot

    def exhausted(self) -> bool:
        """No slot is free and none will be: every one was lost to a scratch it could not wipe."""
        with self._lock:
            return self.retired and not self._free and not self._slot_of

    def run(self, idea: Path, jobs: list[SeedJob], gate: Gate) -> list[RunOutput]:
        """Run ``idea`` for every job (outputs in job order)."""
        token = secrets.token_hex(8)
        events: queue.Queue = queue.Queue()
        states = [SeedState(job=job, key=f"{token}-{i}") for i, job in enumerate(jobs)]
        with self._lock:
            self._queues.update({s.key: events for s in states})
        idea_dir = self.plan.dirs.ideas / token
        try:
            if not self.wait_ready():
                return [self.failed() for _ in jobs]
            idea_dir.mkdir(mode=0o711)
            idea_dir.chmod(0o711)
            idea_copy = idea_dir / idea_file_name(idea)
            shutil.copyfile(idea, idea_copy)  # a private copy: no later change reaches a seed
            idea_copy.chmod(0o644)
            AttemptRun(self, idea_copy, states, gate, events).drive()
            outputs = [s.output or self.failed() for s in states]
            note = self.memory_note
            if note is not None:  # the memory limits were scaled down to fit the machine
                for out in outputs:
                    out.limit_notes = sorted({*out.limit_notes, note})
            return outputs
        finally:
            with self._lock:
                for s in states:
                    self._queues.pop(s.key, None)
            shutil.rmtree(idea_dir, ignore_errors=True)

    def failed(self) -> RunOutput:
        """What a seed gets when the worker failed before or while it ran."""
        code = self.proc.poll() if self.proc is not None else None
        log_tail = self.log.text() if self.proc is not None else ""
        if self.isolation.sandboxed and code == SANDBOX_SETUP_FAILED and log_tail.startswith("bwrap: "):
            return RunOutput("error", error=f"the sandbox failed to start: {log_tail.splitlines()[0][:300]}",
                             log_tail=log_tail)
        first = next((ln for ln in reversed(log_tail.splitlines()) if ln.strip()), "no message")
        why = "did not start" if not self.ready.is_set() else "died"
        return RunOutput("error", error=f"the worker process {why} (exit {code}): {first[:300]}", log_tail=log_tail)

    def seed_plan(self, state: SeedState, idea_copy: Path) -> SeedPlan:
        """Make the seed's files (weak-teacher copy, FIFOs) and its plan as the worker sees it."""
        plan, iso, slot = self.plan, self.isolation, state.slot
        assert slot is not None
        uid = plan.uids.get(slot)
        weak = plan.dirs.weak / state.name
        copy_weak_teacher(plan.public_dir, state.job.weak_seed, weak, uid)
        fifos = [plan.dirs.pipes / f"{state.name}.{part}" for part in ("result", "log")]
        for path in fifos:
            os.mkfifo(path, 0o600)
        # Read-write: the FIFO never reports EOF (the child opens it later; leftovers of the
        # idea may hold it after), so reading ends when the parent says, not the idea.
        state.result = ResultCapture(os.open(fifos[0], os.O_RDWR | os.O_NONBLOCK))
        state.log = LogCapture(os.open(fifos[1], os.O_RDWR | os.O_NONBLOCK))
        limits = self.limits
        job = JobSpec(idea_path=iso.view(plan, idea_copy), public_dir=iso.view(plan, plan.public_dir),
                      weak_seed=state.job.weak_seed, student_seed=state.job.student_seed,
                      weak_dir=iso.view(plan, weak), time_budget_s=limits.time_s, threads=limits.threads,
                      scratch_dir=iso.scratch_path(plan, slot),
                      device=plan.passthrough.device if plan.passthrough else "cpu")
        return SeedPlan(job=job, result_path=iso.view(plan, fifos[0]), log_path=iso.view(plan, fifos[1]),
                        uid=uid, cgroup_procs=iso.cgroup_paths(plan, slot),
                        nproc=limits.processes if uid is not None else None,
                        rlimits=child_rlimits(limits), allow_root=iso.allow_root)

    def release_seed_files(self, state: SeedState) -> None:
        for capture in (state.result, state.log):
            if capture is not None:
                capture.stop()
        d = self.plan.dirs
        shutil.rmtree(d.weak / state.name, ignore_errors=True)
        for part in ("result", "log"):
            with suppress(FileNotFoundError):
                (d.pipes / f"{state.name}.{part}").unlink()

    def close(self) -> None:
        """Stop the worker and everything it started; remove its cgroups and files (what the
        finalizer does when a worker is dropped unclosed)."""
        self._finalizer()
        if self.proc is not None:
            self.log.stop()
        self.dead.set()


def _pump(stream, ref: weakref.ReferenceType) -> None:  # noqa: ANN001
    """Route the worker's events to its attempts until its stdout ends."""
    for raw in stream:
        verb, _, rest = raw.decode("ascii", "replace").strip().partition(" ")
        key, _, code = rest.partition(" ")
        worker = ref()
        if worker is None:
            return
        worker._event(verb, key, code)
        del worker
    worker = ref()
    if worker is not None:
        worker._ended()


@dataclass
class _Owned:
    """What a worker's finalizer stops and removes, filled in as the worker starts."""

    root: Path
    ledger_key: int | None = None  # its reservation in LEDGER, released last
    cgroups: list[RunCgroup | None] = field(default_factory=list)
    proc: subprocess.Popen | None = None


def _remove(owned: _Owned) -> None:
    proc = owned.proc
    if proc is not None:
        with suppress(OSError, ValueError):
            proc.stdin.close()  # type: ignore[union-attr]
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 9)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(5)
    for cg in dict.fromkeys(owned.cgroups):
        if cg is not None:
            cg.remove()
    shutil.rmtree(owned.root, ignore_errors=True)
    if owned.ledger_key is not None:
        LEDGER.release(owned.ledger_key)


__all__ = ["CONTROLLERS", "Gate", "WarmWorker"]
