"""What runs on a Ray worker node for one seed, and how the public cache gets there.

The head packs the task's *public* cache directory (only that directory: the private store with
gold labels and test roles sits beside it and is never read here) into one archive, addresses it
by the SHA-256 of its contents and puts it in Ray's object store once. A worker unpacks it into
its own store (``<cache root>/ray-worker/<key>-<digest>``), checks the digest, and reuses it for
every later seed. Then it runs the idea under the same ``run_idea`` and isolation as a local run
and returns the ``RunOutput`` (predictions, diagnostics, log tail): scoring stays on the head.

Whole-run limits are the node's own (its cgroups); whether a node lacking them may run a seed
anyway is the driver's choice (``--strict-limits``), which travels in the job as a field: a
node never reads it from its own environment. Strict: the node refuses before fetching anything;
otherwise the seed runs and its output lists what the node could not enforce.

Nothing here imports Ray at module level, so the packing and the run are testable without it.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from sandbox.errors import HarnessError
from sandbox.execution.pool import run_idea
from sandbox.execution.run_output import RunOutput
from sandbox.isolation.base import Limits
from sandbox.isolation.cgroups import support as cgroup_support
from sandbox.isolation.devices import GpuHost, Passthrough, run_passthrough
from sandbox.isolation.registry import get_isolation
from sandbox.paths import cache_root

WORKER_STORE = "ray-worker"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ShippedSeed:
    """One seed run as it travels to a worker: the idea's source, not a path on the head."""

    idea_name: str
    idea_code: str
    seed: int
    limits: Limits
    isolation: str
    cache_key: str
    digest: str  # SHA-256 of the public cache's contents (``tree_digest``)
    models: tuple[str, ...] = ()  # paths the run reads outside the public cache (model weights)
    student_seed: int | None = None
    passthrough: bool = False  # the head ran it with a Passthrough: rebuild one for this node
    device: str = "cpu"  # what the student trains on ("cuda": one of the GPUs Ray gave the task)
    # The driver's --strict-limits. ``Limits.strict`` defaults to the environment of whichever
    # process builds a Limits, and a node's environment is not the driver's: the decision is
    # sent as this field and applied over ``limits`` on the node (``node_limits``).
    strict: bool = False

    def node_limits(self) -> Limits:
        """The limits to run under on the node: the driver's, with the driver's strictness."""
        return replace(self.limits, strict=self.strict)


def _files(root: Path) -> list[Path]:
    """Regular files under ``root`` in a stable order; links and special files are skipped."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def tree_digest(root: Path) -> str:
    """SHA-256 over every regular file's relative path and bytes."""
    digest = hashlib.sha256()
    for path in _files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def pack_public(public_dir: Path) -> tuple[str, bytes]:
    """(digest, uncompressed tar) of the public cache dir: its files only, nothing beside it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in _files(public_dir):
            tar.add(path, arcname=path.relative_to(public_dir).as_posix(), recursive=False)
    return tree_digest(public_dir), buffer.getvalue()


def worker_store() -> Path:
    """Where this node keeps the public caches it was sent (no private file is ever here)."""
    return cache_root() / WORKER_STORE


def ensure_public(cache_key: str, digest: str, fetch: Callable[[], bytes]) -> Path:
    """This node's verified copy of the public cache ``digest``, unpacked once (``fetch`` is
    only called when it is missing). Safe against concurrent seeds on the same node."""
    final = worker_store() / f"{cache_key}-{digest[:16]}"
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(fetch()), mode="r") as tar:
            tar.extractall(tmp, filter="data")
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; the sandbox reads it as another uid
        got = tree_digest(tmp)
        if got != digest:
            raise HarnessError(f"the public cache {cache_key} arrived corrupted on {socket.gethostname()} "
                               f"(digest {got[:16]} ≠ {digest[:16]})")
        try:
            os.rename(tmp, final)
        except OSError:  # another seed on this node unpacked it first
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def missing_model(models: tuple[str, ...]) -> str | None:
    """A one-line error naming the first model this node lacks, or None."""
    for model in models:
        if not Path(model).exists():
            return (f"worker node {socket.gethostname()} lacks the model {model}: install it there "
                    "at the same path as on the head, or run with --executor local")
    return None


def node_passthrough(job: ShippedSeed, gpu_ids: list[str], host: GpuHost | None = None) -> Passthrough | None:
    """This node's passthrough: the model paths, and the GPU Ray gave this task, resolved here
    on the node (Ray's id is an entry of the node's CUDA_VISIBLE_DEVICES or its index in PCI
    bus order, never a /dev minor): its own device nodes, sysfs and driver libraries."""
    if not job.passthrough:
        return None
    if job.device == "cuda" and not gpu_ids:
        raise HarnessError("this seed trains on cuda but Ray gave its task no GPU: "
                           "pass --seed-resources gpus=1")
    return run_passthrough(job.device, list(job.models), str(gpu_ids[0]) if gpu_ids else None, host)


def strict_refusal(limits: Limits) -> str | None:
    """Why this node refuses a strict run (whole-run limits it cannot enforce), or None."""
    sup = cgroup_support()
    if not limits.strict or not sup.missing:
        return None
    return (f"worker node {socket.gethostname()} cannot enforce whole-run limits ({', '.join(sup.missing)}: "
            f"{sup.why or sup.mode}) and the run asked for --strict-limits; give that node cgroups (root, or a "
            "delegated cgroup v2 scope), or drop --strict-limits to run with per-process limits there")


def run_shipped(job: ShippedSeed, fetch: Callable[[], bytes], gpu_ids: list[str] | None = None) -> RunOutput:
    """Run one shipped seed on this node. Problems of the node come back as an ``error``
    output naming the node, never as an exception (which Ray would retry)."""
    limits = job.node_limits()
    problem = strict_refusal(limits) or missing_model(job.models)
    if problem:
        return RunOutput("error", error=problem, isolation=job.isolation)
    try:
        isolation = get_isolation(job.isolation)
        ok, why = isolation.available()
        if not ok:
            raise HarnessError(why)
        passthrough = node_passthrough(job, gpu_ids or [])
        public = ensure_public(job.cache_key, job.digest, fetch)
    except (HarnessError, ValueError, OSError, tarfile.TarError) as exc:
        return RunOutput("error", error=f"worker node {socket.gethostname()}: {exc}",
                         isolation=job.isolation)
    with tempfile.TemporaryDirectory(prefix="aar-idea-") as tmp:
        idea = Path(tmp) / f"{job.idea_name}.py"
        idea.write_text(job.idea_code)
        try:
            return run_idea(idea, public, job.seed, limits, isolation, student_seed=job.student_seed,
                            passthrough=passthrough)
        except HarnessError as exc:  # e.g. strict and the node's cgroups could not be made
            return RunOutput("error", error=f"worker node {socket.gethostname()}: {exc}", isolation=job.isolation)
