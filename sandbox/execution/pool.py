"""Runs every seed of an attempt on a warm worker (sandbox.execution.supervisor) and brings back one
RunOutput each.

Where the isolation allows (``Isolation.self_join``: root hosts, where slots have uids of their
own), a ``WorkerPool`` keeps a worker warm between attempts, so an attempt pays neither a
sandbox start nor a torch import; elsewhere (user namespaces, GPU runs, Ray nodes) each attempt
gets a worker of its own, closed after it.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox.errors import HarnessError
from sandbox.execution.run_output import RunOutput
from sandbox.execution.supervisor import Gate, WarmWorker
from sandbox.isolation.base import Isolation, Limits, SeedJob
from sandbox.isolation.cgroups import STRICT_ENV
from sandbox.isolation.cgroups import support as cgroup_support
from sandbox.isolation.devices import Passthrough


class WorkerPool:
    """Warm workers kept between attempts: one per (public dir, limits, isolation,
    passthrough), ``n_slots`` seeds at once each. Thread-safe; ``close()`` stops them all."""

    def __init__(self, n_slots: int) -> None:
        self.n_slots = max(1, n_slots)
        self._lock = threading.Lock()
        self._workers: dict[tuple, WarmWorker] = {}

    @staticmethod
    def accepts(isolation: Isolation, passthrough: Passthrough | None) -> bool:
        """A GPU run keeps a worker of its own (only its GPU's device nodes are mounted)."""
        return isolation.self_join and not (passthrough is not None and passthrough.has_gpu)

    def acquire(self, public_dir: Path, limits: Limits, isolation: Isolation,
                passthrough: Passthrough | None) -> WarmWorker:
        key = (public_dir, repr(limits), id(isolation), repr(passthrough))
        with self._lock:
            worker = self._workers.get(key)
            if worker is None or not worker.usable():
                if worker is not None and worker.users == 0:
                    worker.close()
                worker = self._workers[key] = WarmWorker(public_dir, limits, isolation, self.n_slots, passthrough)
            worker.users += 1
            return worker

    def release(self, worker: WarmWorker) -> None:
        with self._lock:
            worker.users -= 1
            if worker.users == 0 and worker not in self._workers.values():
                worker.close()  # replaced while this attempt used it

    def close(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.close()


def run_attempt(idea: Path, public_dir: Path, jobs: list[SeedJob], limits: Limits,
                isolation: Isolation | None = None, slots: threading.Semaphore | None = None,
                parallel: int | None = None, cancelled: threading.Event | None = None,
                passthrough: Passthrough | None = None, pool: WorkerPool | None = None) -> list[RunOutput]:
    """Run ``idea`` for every job, at most ``parallel`` at once, each holding one of ``slots``;
    when ``cancelled`` is set (a second Ctrl-C) running seeds are killed and the rest never
    start, all ``killed``. ``passthrough``: student weights, a GPU (sandbox.isolation.devices). ``pool``:
    warm workers kept between attempts (used where the isolation allows). Outputs in job order."""
    isolation = isolation or Isolation()
    ok, why = isolation.available()
    if not ok:
        raise HarnessError(why)
    unenforced = _check_limits(limits) + isolation.unenforced()
    gate = Gate(slots or threading.BoundedSemaphore(len(jobs)), parallel or len(jobs), cancelled or threading.Event())
    if pool is not None and WorkerPool.accepts(isolation, passthrough):
        worker = pool.acquire(public_dir, limits, isolation, passthrough)
        try:
            outputs = worker.run(idea, jobs, gate)
        finally:
            pool.release(worker)
    else:
        per = isolation.seeds_per_worker() or len(jobs)
        groups = [jobs[i:i + per] for i in range(0, len(jobs), per)]
        def one(group: list[SeedJob]) -> list[RunOutput]:
            return _one_shot(idea, public_dir, group, limits, isolation, gate, passthrough)

        if len(groups) == 1:
            outputs = one(groups[0])
        else:
            with ThreadPoolExecutor(len(groups)) as threads:
                outputs = [o for part in threads.map(one, groups) for o in part]
    for out in outputs:
        out.unenforced = sorted(set(unenforced) | set(out.unenforced))
        out.isolation = isolation.name
    return outputs


def _one_shot(idea: Path, public_dir: Path, jobs: list[SeedJob], limits: Limits, isolation: Isolation,
              gate: Gate, passthrough: Passthrough | None) -> list[RunOutput]:
    worker = WarmWorker(public_dir, limits, isolation, len(jobs), passthrough)
    try:
        return worker.run(idea, jobs, gate)
    finally:
        worker.close()


def _check_limits(limits: Limits) -> list[str]:
    sup = cgroup_support()
    if sup.missing and limits.strict:
        raise HarnessError(f"whole-run limits not enforceable here ({', '.join(sup.missing)}): {sup.why or sup.mode}; "
                           f"unset {STRICT_ENV} / drop --strict-limits to run with per-process limits only")
    return list(sup.missing)


__all__ = ["WorkerPool", "run_attempt"]


def run_idea(idea: Path, public_dir: Path, seed: int, limits: Limits,
             isolation: Isolation | None = None, student_seed: int | None = None,
             passthrough: Passthrough | None = None, cancel: threading.Event | None = None) -> RunOutput:
    """Run ``idea`` with weak teacher ``seed`` (and ``student_seed``, by default the same) under
    ``isolation`` and collect its output safely. ``passthrough``: host paths (student weights)
    and GPUs the run may use (sandbox.isolation.devices); ``cancel`` kills it early (a second Ctrl-C).
    A warm worker holding this one seed (the Ray executor runs seeds one by one this way)."""
    job = SeedJob(seed, seed if student_seed is None else student_seed)
    return run_attempt(idea, public_dir, [job], limits, isolation, cancelled=cancel, passthrough=passthrough)[0]
