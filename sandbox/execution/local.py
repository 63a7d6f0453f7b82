"""The ``local`` executor: seeds on this machine, in warm workers, a bounded number at once."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

from sandbox.errors import HarnessError
from sandbox.execution.base import Executor, SeedRequest
from sandbox.execution.pool import WorkerPool, run_attempt
from sandbox.execution.run_output import CANCELLED, RunOutput
from sandbox.isolation.base import SeedJob
from sandbox.isolation.devices import Passthrough

# One GPU seed per GPU at a time, whichever executor or evaluator of this process asks: the
# rest queue here (several copies of a 4B model training on one GPU at once would not fit).
_GPU_GATES: dict[str, threading.Lock] = {}
_GATES_LOCK = threading.Lock()
GATE_POLL_S = 0.5  # a queued GPU seed sees a cancel within this


def gpu_gate(key: str) -> threading.Lock:
    """The lock of the GPU ``key`` names (sandbox.isolation.devices.Passthrough.gpu_key)."""
    with _GATES_LOCK:
        return _GPU_GATES.setdefault(key, threading.Lock())


class LocalExecutor(Executor):
    """Seeds on this machine: a warm worker (sandbox.execution.supervisor) forks a child per seed, up to
    ``parallel`` at once, each holding a slot; where the isolation allows, the worker stays warm
    for the next attempt (``close()`` stops it; so does this process's exit)."""

    name = "local"

    def __init__(self, parallel: int | None = None, slots: threading.Semaphore | None = None) -> None:
        self.parallel = max(1, parallel or os.cpu_count() or 1)
        # Shared by every evaluator of a multi-researcher session: never more idea processes
        # at once than there are slots (cores), whoever asks.
        self.slots = slots or threading.BoundedSemaphore(self.parallel)
        self._cancelled = threading.Event()
        self.pool = WorkerPool(self.parallel)

    def run(self, requests: Sequence[SeedRequest]) -> list[RunOutput]:
        if not requests:
            return []
        groups = worker_groups(requests)
        outputs: list[RunOutput | None] = [None] * len(requests)
        with ThreadPoolExecutor(len(groups)) as pool:
            for idx, outs in pool.map(lambda ix: (ix, self._run_group([requests[i] for i in ix])), groups):
                for i, out in zip(idx, outs, strict=True):
                    outputs[i] = out
        return outputs  # type: ignore[return-value]

    def _run_group(self, reqs: list[SeedRequest]) -> list[RunOutput]:
        first = reqs[0]
        key = first.passthrough.gpu_key if first.passthrough is not None else None
        if key is None:
            return self._run_now(reqs)
        gate = gpu_gate(key)
        while not gate.acquire(timeout=GATE_POLL_S):  # queued behind the seed on this GPU
            if self._cancelled.is_set():
                return self._run_now(reqs)  # reports them killed
        try:
            return self._run_now(reqs)
        finally:
            gate.release()

    def _run_now(self, reqs: list[SeedRequest]) -> list[RunOutput]:
        first = reqs[0]
        if self._cancelled.is_set():
            return [RunOutput("killed", error=CANCELLED, isolation=first.isolation.name) for _ in reqs]
        jobs = [SeedJob(r.seed, r.seed if r.student_seed is None else r.student_seed) for r in reqs]
        return run_attempt(first.idea.resolve(), first.public_dir, jobs, first.limits, first.isolation,
                           slots=self.slots, parallel=self.parallel, cancelled=self._cancelled,
                           passthrough=first.passthrough, pool=self.pool)

    def warm(self, request: SeedRequest) -> None:
        iso = request.isolation
        if self._cancelled.is_set() or not WorkerPool.accepts(iso, request.passthrough) or not iso.available()[0]:
            return
        with suppress(HarnessError, OSError):  # the first real run reports what is wrong
            self.pool.release(self.pool.acquire(request.public_dir, request.limits, iso, request.passthrough))

    def cancel(self) -> None:
        # Runs in flight are killed (their supervisor watches the event); what has not started never does.
        self._cancelled.set()

    def close(self) -> None:
        self.pool.close()


def seeds_at_once(seeds: int, cores: int | None = None) -> int:
    """How many seeds of an attempt run at once on this machine, each single-threaded: one per
    core, or all of them when that oversubscribes the cores by at most half. Three seeds on two
    cores then take 1.5 rounds of compute instead of two (the third no longer runs alone while a
    core idles); each still has its own 1-core quota."""
    cores = max(1, cores or os.cpu_count() or 1)
    return seeds if cores < seeds <= cores + cores // 2 else cores


def worker_groups(requests: Sequence[SeedRequest]) -> list[list[int]]:
    """Request indices by warm worker. Requests that share idea, cache, limits, isolation and
    passthrough (all seeds of an attempt) share one worker; a GPU run keeps a worker of its
    own (each seed gets only its own GPU's device nodes, so one sandbox cannot hold two), and
    so does a repeat of a seed already in a group (a worker knows a seed by its key)."""
    groups: dict[tuple, list[list[int]]] = {}
    for i, req in enumerate(requests):
        pt = req.passthrough
        gpu = bool(pt is not None and pt.has_gpu)
        key = (req.idea.resolve(), req.public_dir, repr(req.limits), id(req.isolation), _passthrough_key(pt),
               i if gpu else -1)
        job = _job(req)
        bins = groups.setdefault(key, [])
        target = next((b for b in bins if all(_job(requests[j]) != job for j in b)), None)
        if target is None:
            bins.append(target := [])
        target.append(i)
    return [b for bins in groups.values() for b in bins]


def _job(req: SeedRequest) -> tuple[int, int]:
    return req.seed, req.seed if req.student_seed is None else req.student_seed


def _passthrough_key(pt: Passthrough | None) -> tuple:
    if pt is None:
        return ()
    return pt.ro_paths, pt.device_nodes, tuple(sorted(pt.env.items())), pt.device, pt.ro_binds, pt.node_binds
