"""Where seed runs happen: the seam between the trusted evaluator and the machines.

The evaluator builds one ``SeedRequest`` per seed of an attempt and hands the whole batch to an
``Executor``; it gets one ``RunOutput`` per request back, in order, and scores them itself. A
request carries only what the idea may see (the idea file, the public cache dir, limits): never
gold labels or test roles, so no executor can ship them anywhere.

Executors are pluggable (``register_executor``): ``local`` (the default) runs seeds on this
machine in a bounded pool, never more idea processes at once than a shared slot semaphore allows;
``ray`` (sandbox.executors_ray, optional extra) runs each seed as a Ray task on a cluster node,
under the same isolation.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from sandbox.attempt import WorkerPool, run_attempt
from sandbox.devices import Passthrough
from sandbox.errors import HarnessError
from sandbox.runner import Isolation, Limits, RunOutput, SeedJob

__all__ = ["Executor", "ExecutorConfig", "ExecutorOptions", "LocalExecutor", "SeedRequest", "SeedResources",
           "executor_names", "get_executor", "register_executor", "seeds_at_once"]
DEFAULT_EXECUTOR = "local"
CANCELLED = "cancelled before it started (the session was interrupted)"


@dataclass(frozen=True)
class SeedResources:
    """Logical resources one seed run asks a scheduler for (Ray); the sandbox's own limits
    (``Limits``) are what is enforced on the node."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_bytes: int | None = None  # None: ask for nothing; Limits.memory_bytes still caps it


@dataclass(frozen=True)
class SeedRequest:
    """One run of one idea for one seed. Only public inputs: executors may send it anywhere.

    New fields get defaults so every executor keeps working when one is added."""

    idea: Path
    seed: int
    public_dir: Path
    limits: Limits
    isolation: Isolation
    cache_key: str = ""  # content key of ``public_dir``: a remote copy is checked against it
    resources: SeedResources = field(default_factory=SeedResources)
    passthrough: Passthrough | None = None  # fine-tune runs: student weights (ro), the run's GPU
    student_seed: int | None = None  # the student's own seed; None: the same as ``seed``
    models: tuple[str, ...] = ()  # paths the run reads outside public_dir (model weights): a
    # remote node lacking one fails the seed with a one-line error naming it


class Executor:
    """Runs batches of seed requests; thread-safe (parallel researchers share one)."""

    name = "base"

    def run(self, requests: Sequence[SeedRequest]) -> list[RunOutput]:
        """Run every request (all seeds of one attempt); outputs in request order. A seed that
        cannot run comes back as a failed ``RunOutput``, never as an exception, unless the
        executor itself is unusable (``HarnessError``)."""
        raise NotImplementedError

    def warm(self, request: SeedRequest) -> None:
        """Start, without waiting, what runs like ``request`` will need (a warm worker), so the
        first attempt does not wait for it. Optional."""

    def cancel(self) -> None:
        """Stop what is in flight and refuse what has not started (Ctrl-C). Idempotent."""

    def close(self) -> None:
        """Release what the executor holds (a cluster connection, processes it started)."""

    def describe(self) -> str:
        return self.name


class ExecutorConfig(BaseModel):
    """Where and how seeds run, as chosen on the command line (kept in the session manifest)."""

    name: str = Field(DEFAULT_EXECUTOR, description="Executor: 'local' (this machine) or 'ray'.")
    ray_address: str | None = Field(None, description="Ray cluster: 'auto' or HOST:PORT (ray only).")
    cpus: float | None = Field(None, description="CPUs requested per seed (default: the run's threads).")
    gpus: float = Field(0.0, description="GPUs requested per seed (ray only).")
    memory_gb: float | None = Field(None, description="Memory requested per seed, GiB (a scheduling request).")
    max_retries: int = Field(2, description="Re-runs of a seed whose worker or node died, then 'lost'.")
    queue_timeout_s: float = Field(
        1800.0, description="Longest a seed may wait for cluster resources, on top of its run time.")


@dataclass
class ExecutorOptions:
    """An executor's config plus what only exists at run time."""

    config: ExecutorConfig = field(default_factory=ExecutorConfig)
    parallel: int | None = None  # seeds at once per batch (local); default: cores
    slots: threading.Semaphore | None = None  # shared across evaluators: idea processes at once
    on_notice: Callable[[str], None] | None = None  # one-line notices ("started a local cluster")


class LocalExecutor(Executor):
    """Seeds on this machine: a warm worker (sandbox.warm_worker) forks a child per seed, up to
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
        gpu = bool(pt is not None and pt.device_nodes)
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
    return pt.ro_paths, pt.device_nodes, tuple(sorted(pt.env.items())), pt.device


def _local_factory(options: ExecutorOptions) -> Executor:
    return LocalExecutor(options.parallel, options.slots)


def _ray_factory(options: ExecutorOptions) -> Executor:
    try:
        import ray  # noqa: F401  (only to say what to install when it is missing)
    except ImportError as exc:
        raise HarnessError("--executor ray needs Ray: pip install -e '.[ray]'") from exc
    from sandbox.executors_ray import RayExecutor

    return RayExecutor(options)


_EXECUTORS: dict[str, Callable[[ExecutorOptions], Executor]] = {"local": _local_factory, "ray": _ray_factory}


def register_executor(name: str, factory: Callable[[ExecutorOptions], Executor]) -> None:
    _EXECUTORS[name] = factory


def executor_names() -> list[str]:
    return sorted(_EXECUTORS)


def get_executor(options: ExecutorOptions | None = None) -> Executor:
    """A new executor as ``options.config.name`` says; ``HarnessError`` (one line) if unknown
    or not installed."""
    options = options or ExecutorOptions()
    name = options.config.name
    if name not in _EXECUTORS:
        raise HarnessError(f"unknown executor {name!r}: use one of {', '.join(executor_names())}")
    return _EXECUTORS[name](options)
