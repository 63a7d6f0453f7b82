"""Supervises a warm worker: runs every seed of one attempt and brings back one RunOutput each.

Per worker: one run directory, one cgroup for the worker (its seeds' cgroups nested inside),
one isolation; per seed: a cgroup of its own (memory, pids, CPU quota), a result pipe and a log
pipe read here, a private weak-teacher copy and scratch, a wall clock. A seed starts only when
it holds a slot (never more idea processes at once than the caller allows). When a seed's
child ends, everything left in its cgroup is killed and its pipes are read no further.
"""

from __future__ import annotations

import os
import queue
import secrets
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.cgroups import CONTROLLERS, STRICT_ENV, RunCgroup, RunLimits
from sandbox.cgroups import support as cgroup_support
from sandbox.devices import Passthrough
from sandbox.errors import HarnessError
from sandbox.run_output import LogCapture, ResultCapture, RunOutput, collect
from sandbox.runner import (
    SANDBOX_SETUP_FAILED,
    Isolation,
    Limits,
    RunDirs,
    RunPlan,
    SeedJob,
    child_rlimits,
    copy_weak_teacher,
    set_rlimits,
)
from sandbox.runtime.context import JobSpec
from sandbox.runtime.worker import SeedPlan, WorkerPlan

TICK_S = 0.02
WORKER_MEMORY = 2 << 30  # the worker's own share (interpreter, torch) on top of its seeds'
WORKER_PIDS = 64
READY_TIMEOUT_S = 120.0
CANCELLED = "cancelled before it started (the session was interrupted)"
ABANDONED = "abandoned: the run was cancelled (Ctrl-C)"


@dataclass
class SeedState:
    """The parent's view of one seed while its worker runs."""

    job: SeedJob
    cgroup: RunCgroup | None
    result: ResultCapture
    log: LogCapture
    write_fds: tuple[int, int]
    started: float | None = None
    stopped: RunOutput | None = None  # set when the parent stopped it (timeout, caps)
    output: RunOutput | None = None


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
class Worker:
    """One running worker process and its event stream."""

    proc: subprocess.Popen
    events: queue.Queue = field(default_factory=queue.Queue)

    def start_reader(self) -> None:
        def pump() -> None:
            for raw in self.proc.stdout:  # type: ignore[union-attr]
                self.events.put(raw.decode("ascii", "replace").strip())
            self.events.put(None)

        threading.Thread(target=pump, daemon=True, name="worker-events").start()

    def send(self, line: str) -> None:
        with suppress(OSError, ValueError):
            self.proc.stdin.write(f"{line}\n".encode())  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]


def run_attempt(idea: Path, public_dir: Path, jobs: list[SeedJob], limits: Limits,
                isolation: Isolation | None = None, slots: threading.Semaphore | None = None,
                parallel: int | None = None, cancelled: threading.Event | None = None,
                passthrough: Passthrough | None = None) -> list[RunOutput]:
    """Run ``idea`` for every job, at most ``parallel`` at once, each holding one of ``slots``;
    when ``cancelled`` is set (a second Ctrl-C) running seeds are killed and the rest never
    start, all ``killed``. ``passthrough``: student weights, a GPU (sandbox.devices). Outputs
    in job order."""
    isolation = isolation or Isolation()
    ok, why = isolation.available()
    if not ok:
        raise HarnessError(why)
    unenforced = _check_limits(limits) + isolation.unenforced()
    per = isolation.seeds_per_worker() or len(jobs)
    groups = [jobs[i:i + per] for i in range(0, len(jobs), per)]
    gate = Gate(slots or threading.BoundedSemaphore(len(jobs)), parallel or len(jobs), cancelled or threading.Event())
    if len(groups) == 1:
        outputs = _run_worker(idea, public_dir, groups[0], limits, isolation, gate, passthrough)
    else:
        with ThreadPoolExecutor(len(groups)) as pool:
            parts = pool.map(lambda g: _run_worker(idea, public_dir, g, limits, isolation, gate, passthrough), groups)
            outputs = [o for part in parts for o in part]
    for out in outputs:
        out.unenforced = sorted(set(unenforced) | set(out.unenforced))
        out.isolation = isolation.name
    return outputs


def _check_limits(limits: Limits) -> list[str]:
    sup = cgroup_support()
    if sup.missing and limits.strict:
        raise HarnessError(f"whole-run limits not enforceable here ({', '.join(sup.missing)}): {sup.why or sup.mode}; "
                           f"unset {STRICT_ENV} / drop --strict-limits to run with per-process limits only")
    return list(sup.missing)


def _cgroups(limits: Limits, jobs: list[SeedJob], self_join: bool
             ) -> tuple[RunCgroup | None, dict[str, RunCgroup | None]]:
    """The worker's cgroup and one nested per seed; where seeds cannot join their own (one seed
    per worker), the worker's cgroup carries that seed's limits."""
    n = len(jobs)
    # The worker's group weighs as much CPU as its seeds may use together, so an attempt of one
    # busy seed never gets the same share as an attempt of several (seeds' quotas still cap each).
    top = RunLimits(memory_bytes=n * limits.memory_bytes + WORKER_MEMORY, pids=n * limits.processes + WORKER_PIDS,
                    weight_cores=float(n * max(1, limits.threads)))
    seed_limits = RunLimits(memory_bytes=limits.memory_bytes, pids=limits.processes, cpus=float(max(1, limits.threads)))
    name = f"attempt-{os.getpid()}-{secrets.token_hex(6)}"
    try:
        worker_cg = RunCgroup.create(name, top if self_join else seed_limits)
        if worker_cg is None or not self_join:
            return worker_cg, {j.key: worker_cg if not self_join else None for j in jobs}
        seeds = {}
        for job in jobs:
            seeds[job.key] = RunCgroup.create(job.key, seed_limits, parent=worker_cg)
        return worker_cg, seeds
    except OSError as exc:
        if limits.strict:
            raise HarnessError(f"cannot make the run's cgroups ({exc}); unset {STRICT_ENV} to run without") from exc
        return None, {j.key: None for j in jobs}


def memory_killed(limits: Limits) -> RunOutput:
    return RunOutput("killed", error=f"idea process killed: over the {limits.memory_bytes >> 20} MiB memory limit "
                     "(counted for the whole run: every process, tmpfs and memory files)")


def _run_worker(idea: Path, public_dir: Path, jobs: list[SeedJob], limits: Limits, isolation: Isolation,
                gate: Gate, passthrough: Passthrough | None) -> list[RunOutput]:
    with tempfile.TemporaryDirectory(prefix="aar-run-", ignore_cleanup_errors=True) as tmp:
        os.chmod(tmp, 0o755)  # seeds' uids traverse it to their own (private) dirs
        plan = RunPlan(idea=idea, public_dir=public_dir, seeds=jobs, limits=limits, dirs=RunDirs(Path(tmp)),
                       passthrough=passthrough)
        worker_cg, seed_cgs = _cgroups(limits, jobs, isolation.self_join)
        states: dict[str, SeedState] = {}
        try:
            plan.cgroup_procs = {k: [str(p) for p in cg.procs_files] for k, cg in seed_cgs.items()
                                 if cg is not None and cg is not worker_cg}
            isolation.prepare(plan)
            for job in jobs:
                copy_weak_teacher(public_dir, job.weak_seed, plan.dirs.seed_dir(job.key, "weak"), plan.uids.get(job.key))
            states = {job.key: _seed_state(job, seed_cgs[job.key]) for job in jobs}
            _write_plan(plan, isolation, states)
            return _supervise(plan, isolation, states, worker_cg, gate)
        finally:
            for state in states.values():
                for fd in state.write_fds:
                    with suppress(OSError):
                        os.close(fd)
            for cg in dict.fromkeys([*seed_cgs.values(), worker_cg]):
                if cg is not None:
                    cg.remove()


def _seed_state(job: SeedJob, cgroup: RunCgroup | None) -> SeedState:
    result_r, result_w = os.pipe()
    log_r, log_w = os.pipe()
    return SeedState(job=job, cgroup=cgroup, result=ResultCapture(result_r), log=LogCapture(log_r),
                     write_fds=(result_w, log_w))


def _write_plan(plan: RunPlan, isolation: Isolation, states: dict[str, SeedState]) -> None:
    limits = plan.limits
    seeds = {}
    for key, state in states.items():
        job = JobSpec(weak_seed=state.job.weak_seed, student_seed=state.job.student_seed,
                      time_budget_s=limits.time_s, threads=limits.threads,
                      device=plan.passthrough.device if plan.passthrough else "cpu", **isolation.seed_paths(plan, key))
        seeds[key] = SeedPlan(job=job, result_fd=state.write_fds[0], log_fd=state.write_fds[1],
                              uid=plan.uids.get(key), cgroup_procs=isolation.cgroup_paths(plan, key),
                              nproc=limits.processes if key in plan.uids else None,
                              rlimits=child_rlimits(limits), allow_root=isolation.allow_root)
    plan.dirs.plan.write_text(WorkerPlan(seeds=seeds).model_dump_json())
    plan.dirs.plan.chmod(0o644)


def _start_worker(plan: RunPlan, isolation: Isolation, states: dict[str, SeedState],
                  worker_cg: RunCgroup | None) -> tuple[Worker, LogCapture]:
    argv = isolation.command(plan)  # first: it may open descriptors extra_fds hands over
    extra = isolation.extra_fds(plan)
    fds = [fd for s in states.values() for fd in s.write_fds] + extra

    def preexec() -> None:
        set_rlimits(plan.limits)
        if worker_cg is not None:  # before exec: every process of the worker is born inside
            worker_cg.add(os.getpid())

    try:
        err_r, err_w = os.pipe()
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err_w,
            env=isolation.environment(plan), cwd=isolation.cwd(plan), pass_fds=fds,
            start_new_session=True, preexec_fn=preexec,
        )
    finally:
        for fd in extra:
            os.close(fd)
    os.close(err_w)
    for state in states.values():  # the worker holds them now; the parent only reads
        for fd in state.write_fds:
            os.close(fd)
        state.write_fds = ()
    log = LogCapture(err_r)
    log.start()
    worker = Worker(proc)
    worker.start_reader()
    return worker, log


def _supervise(plan: RunPlan, isolation: Isolation, states: dict[str, SeedState],
               worker_cg: RunCgroup | None, gate: Gate) -> list[RunOutput]:
    worker, worker_log = _start_worker(plan, isolation, states, worker_cg)
    for state in states.values():
        state.result.start()
        state.log.start()
    held: set[str] = set()
    try:
        if _wait_ready(worker):
            _drive(plan, worker, states, gate, held)
    finally:
        with suppress(OSError, ValueError):
            worker.proc.stdin.close()  # type: ignore[union-attr]
        if worker_cg is not None:
            worker_cg.kill_all()
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.proc.pid, 9)
        code = worker.proc.wait()
        worker_log.stop()
        for _ in held:
            gate.leave()
        for state in states.values():
            if state.output is None:
                state.output = _worker_failed(code, worker_log.text(), isolation)
            _stop_pipes(state)
    return [states[job.key].output for job in plan.seeds]  # type: ignore[misc]


def _wait_ready(worker: Worker) -> bool:
    try:
        return worker.events.get(timeout=READY_TIMEOUT_S) == "ready"
    except queue.Empty:
        return False


def _drive(plan: RunPlan, worker: Worker, states: dict[str, SeedState], gate: Gate, held: set[str]) -> None:
    pending = [job.key for job in plan.seeds]
    limits = plan.limits
    while pending or held:
        if gate.cancelled.is_set():
            for key in pending:
                states[key].output = RunOutput("killed", error=CANCELLED)
            pending = []
        while pending and gate.try_enter():
            key = pending.pop(0)
            held.add(key)
            states[key].started = time.monotonic()
            worker.send(f"start {key}")
        try:
            event = worker.events.get(timeout=TICK_S)
        except queue.Empty:
            event = ""
        if event is None:
            return  # the worker died: what is left is reported as its failure
        verb, _, rest = event.partition(" ")
        if verb == "exit":
            key, _, code = rest.partition(" ")
            if key in held:
                _finish(states[key], int(code), limits)
                held.discard(key)
                gate.leave()
        now = time.monotonic()
        for key in held:
            state = states[key]
            if state.stopped is None and gate.cancelled.is_set():
                state.stopped = RunOutput("killed", error=ABANDONED)
            elif state.stopped is None and state.started is not None and now - state.started > limits.time_s:
                state.stopped = RunOutput("timeout", error=f"exceeded the {limits.time_s:g}s time budget")
            elif state.stopped is None and state.result.overflow:
                state.stopped = RunOutput("invalid", error=f"the result is larger than {state.result.cap} bytes "
                                          "(predictions.npy over its cap)")
            if state.stopped is not None:
                if state.cgroup is not None:
                    state.cgroup.kill_all()
                worker.send(f"kill {key}")


def _stop_pipes(state: SeedState) -> None:
    if state.cgroup is not None:
        state.cgroup.kill_all()  # what the child left behind (setsid daemons) goes with it
    state.result.stop()
    state.log.stop()


def _finish(state: SeedState, code: int, limits: Limits) -> None:
    """The seed's main process ended: stop reading, collect, score the limits it hit."""
    runtime = time.monotonic() - (state.started or time.monotonic())
    _stop_pipes(state)
    if state.stopped is None and state.cgroup is not None and state.cgroup.oom_kills():
        state.stopped = memory_killed(limits)
    if state.stopped is not None:
        output = state.stopped
    else:
        files, problem = state.result.frames()
        output = RunOutput("invalid", error=problem) if files is None else collect(files, code)
    output.log_tail = state.log.text()
    output.runtime_s = runtime
    state.output = output


def _worker_failed(code: int | None, log_tail: str, isolation: Isolation) -> RunOutput:
    if isolation.sandboxed and code == SANDBOX_SETUP_FAILED and log_tail.startswith("bwrap: "):
        return RunOutput("error", error=f"the sandbox failed to start: {log_tail.splitlines()[0][:300]}",
                         log_tail=log_tail)
    first = next((ln for ln in reversed(log_tail.splitlines()) if ln.strip()), "no message")
    return RunOutput("error", error=f"the worker process failed before the seed ran (exit {code}): {first[:300]}",
                     log_tail=log_tail)


__all__ = ["CONTROLLERS", "memory_killed", "run_attempt"]
