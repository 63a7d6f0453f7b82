"""The ``ray`` executor: each seed is one Ray task on whichever node has the resources.

The task runs the same ``run_idea`` under the same isolation as a local run (sandbox.execution.ray_node);
Ray's CPU/GPU/memory figures are only scheduling requests, the sandbox's own limits are what is
enforced on the node. Only the public cache travels (content-addressed through the object
store); only the ``RunOutput`` comes back; the evaluator on the head scores it.

Failures: a worker or node that dies mid-seed is retried by Ray up to ``max_retries`` times, then
the seed is ``lost``; Ray's memory monitor killing it is ``killed`` with Ray's reason; a seed
with no result by its deadline is cancelled and ``timeout``; Ctrl-C cancels the batch's tasks.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from ray import exceptions as rex

from sandbox.errors import HarnessError
from sandbox.execution.base import Executor, ExecutorOptions, SeedRequest
from sandbox.execution.ray_node import ShippedSeed, pack_public, run_shipped
from sandbox.execution.run_output import CANCELLED, RunOutput
from sandbox.isolation.devices import driver_lib_dirs

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONNECT_TIMEOUT_S = 5.0
SETUP_MARGIN_S = 120.0  # per try: the worker fetching and unpacking the cache, bwrap starting
POLL_S = 0.5  # ray.wait slices: Ctrl-C and cancel() are seen within this
LOST = (rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError, rex.OwnerDiedError,
        rex.LocalRayletDiedError, rex.RaySystemError)
_connect_lock = threading.Lock()
_archives: dict[tuple[str, str], tuple[str, list[Any]]] = {}  # (public dir, stamp) -> (digest, [ref])


def _seed_task(job: ShippedSeed, archive: list[Any]) -> RunOutput:
    # The archive ref travels boxed in a list, so Ray does not fetch it before the task starts:
    # a node that already holds this cache never downloads it again.
    return run_shipped(job, lambda: ray.get(archive[0]), [str(g) for g in ray.get_gpu_ids()])


_remote_seed = ray.remote(_seed_task)


def _reachable(address: str) -> str | None:
    """Why HOST:PORT cannot be reached, or None (ray.init would otherwise retry for a minute)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return f"--ray-address {address!r} is not HOST:PORT or auto"
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        return (f"no Ray cluster at {address} ({exc.strerror or exc}); start one with "
                "`ray start --head` or pass --ray-address auto")
    return None


def _connect(address: str | None, notice: Callable[[str], None]) -> None:
    with _connect_lock:
        if ray.is_initialized():
            return
        address = address or "auto"
        common: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False, "configure_logging": True}
        if address not in ("auto", "local"):
            problem = _reachable(address)
            if problem:
                raise HarnessError(problem)
            ray.init(address=address, **common)
            return
        if address == "auto":
            try:
                ray.init(address="auto", **common)
                return
            except ConnectionError:
                pass
        # Workers of this local cluster import the project from where this process does.
        ray.init(include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}},
                 **common)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        why = "no Ray cluster found (--ray-address auto)" if address == "auto" else "--ray-address local"
        notice(f"{why}: started a local Ray cluster with {cpus} CPUs; it stops when this command ends")


def connect(address: str | None, notice: Callable[[str], None]) -> None:
    """Join the cluster at ``address`` once per process; ``auto`` with none running (or
    ``local``, always) starts a local one that stops when this process ends, and says so.
    A cluster that cannot be joined or started is a one-line ``HarnessError``."""
    try:
        _connect(address, notice)
    except HarnessError:
        raise
    except Exception as exc:  # Ray raises bare Exception/RuntimeError when a node fails to start
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise HarnessError(f"could not join or start a Ray cluster at {address or 'auto'}: {first}; "
                           "check `ray status` there, or use --executor local") from exc


def _stamp(public_dir: Path) -> str:
    """Cheap change detector for the memo (the digest itself is over the contents)."""
    return "|".join(f"{p.relative_to(public_dir)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                    for p in sorted(public_dir.rglob("*")) if p.is_file())


def _shipped_archive(public_dir: Path) -> tuple[str, list[Any]]:
    key = (str(public_dir), _stamp(public_dir))
    with _connect_lock:
        if key not in _archives:
            digest, data = pack_public(public_dir)
            _archives[key] = (digest, [ray.put(data)])
        return _archives[key]


def shipped_seed(req: SeedRequest, threads: int, digest: str) -> ShippedSeed:
    """What travels to the node for ``req``: the idea's source, the limits (with the threads Ray
    gives the task) and the driver's --strict-limits as a field of its own (sandbox.execution.ray_node)."""
    pt = req.passthrough
    # The head's driver-library mounts are the head's; a node finds its own.
    libs = set(driver_lib_dirs()) if pt and pt.has_gpu else set()
    models = tuple(dict.fromkeys([*req.models, *(p for p in (pt.ro_paths if pt else ()) if p not in libs)]))
    return ShippedSeed(idea_name=req.idea.stem, idea_code=req.idea.read_text(), seed=req.seed,
                       limits=replace(req.limits, threads=threads), isolation=req.isolation.name,
                       cache_key=req.cache_key, digest=digest, models=models, student_seed=req.student_seed,
                       passthrough=pt is not None, device=pt.device if pt else "cpu", strict=req.limits.strict)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _failure(exc: BaseException, retries: int) -> RunOutput:
    first = _first_line(exc)
    if isinstance(exc, rex.OutOfMemoryError):
        return RunOutput("killed", error=f"Ray's memory monitor killed the seed: {first}")
    if isinstance(exc, rex.TaskCancelledError):
        return RunOutput("killed", error="the seed's Ray task was cancelled")
    if isinstance(exc, LOST):
        return RunOutput("lost", error=f"the worker running this seed was lost ({type(exc).__name__}) "
                                       f"after {retries} retr{'y' if retries == 1 else 'ies'}: {first}")
    if isinstance(exc, rex.RayTaskError):  # a bug in the harness on the worker, not the idea
        # Its own first line is the worker's process title (with colour codes): say the cause.
        cause = getattr(exc, "cause", None)
        why = f"{type(cause).__name__}: {_first_line(cause)}" if isinstance(cause, BaseException) else first
        return RunOutput("error", error=f"the seed's Ray task failed: {why}")
    return RunOutput("lost", error=f"{type(exc).__name__}: {first}")


class RayExecutor(Executor):
    """Seeds as Ray tasks on the cluster at ``options.ray_address``."""

    name = "ray"
    remote = True

    def __init__(self, options: ExecutorOptions) -> None:
        self.options = options
        connect(options.config.ray_address, options.on_notice or (lambda line: None))
        self._inflight: set[Any] = set()
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def describe(self) -> str:
        return f"ray ({ray.get_runtime_context().gcs_address})"

    def _submit(self, req: SeedRequest) -> Any:
        opts = self.options.config
        cpus = opts.cpus if opts.cpus is not None else max(req.resources.cpus, float(req.limits.threads))
        gpus = opts.gpus or req.resources.gpus
        memory = int(opts.memory_gb * (1 << 30)) if opts.memory_gb else req.resources.memory_bytes
        digest, archive = _shipped_archive(req.public_dir)
        job = shipped_seed(req, max(1, int(cpus)), digest)
        if job.device == "cuda":
            gpus = max(gpus, 1.0)  # the student trains on a GPU: its node must give it one
        task = _remote_seed.options(num_cpus=cpus, num_gpus=gpus, memory=memory, name="aar-seed",
                                    max_retries=opts.max_retries, retry_exceptions=False)
        return task.remote(job, archive)

    def _deadline(self, req: SeedRequest) -> float:
        per_try = req.limits.time_s + SETUP_MARGIN_S
        return time.monotonic() + self.options.config.queue_timeout_s + per_try * (1 + self.options.config.max_retries)

    def run(self, requests: Sequence[SeedRequest]) -> list[RunOutput]:
        if self._cancelled.is_set():
            return [RunOutput("killed", error=CANCELLED, isolation=r.isolation.name) for r in requests]
        refs = [self._submit(r) for r in requests]
        deadlines = [self._deadline(r) for r in requests]
        with self._lock:
            self._inflight.update(refs)
        try:
            self._wait(refs, deadlines)
            return [self._collect(ref, req, dl) for ref, req, dl in zip(refs, requests, deadlines, strict=True)]
        except KeyboardInterrupt:
            self._cancel(refs)
            raise
        finally:
            with self._lock:
                self._inflight.difference_update(refs)

    def _wait(self, refs: list[Any], deadlines: list[float]) -> None:
        pending = list(refs)
        while pending and time.monotonic() < max(deadlines):
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S)

    def _collect(self, ref: Any, req: SeedRequest, deadline: float) -> RunOutput:
        ready, _ = ray.wait([ref], timeout=0)
        if not ready:
            ray.cancel(ref, force=True)
            config = self.options.config
            waited = config.queue_timeout_s + (req.limits.time_s + SETUP_MARGIN_S) * (1 + config.max_retries)
            out = RunOutput("timeout", error=f"no result from the Ray cluster within {waited:.0f}s "
                                             "(queued for resources or stuck); the task was cancelled")
        else:
            try:
                out = ray.get(ref)
            except rex.RayError as exc:
                out = _failure(exc, self.options.config.max_retries)
        out.isolation = req.isolation.name
        return out

    def _cancel(self, refs: Sequence[Any]) -> None:
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except rex.RayError:  # already finished or gone
                pass

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            refs = list(self._inflight)
        self._cancel(refs)

    def close(self) -> None:
        self.cancel()
