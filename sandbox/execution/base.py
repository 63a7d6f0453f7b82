"""Where seed runs happen: the seam between the trusted evaluator and the machines.

The evaluator builds one ``SeedRequest`` per seed of an attempt and hands the whole batch to an
``Executor``; it gets one ``RunOutput`` per request back, in order, and scores them itself. A
request carries only what the idea may see (the idea file, the public cache dir, limits): never
gold labels or test roles, so no executor can ship them anywhere.

Executors are pluggable (sandbox.execution.registry): ``local`` (sandbox.execution.local, the
default) runs seeds on this machine in a bounded pool, never more idea processes at once than a
shared slot semaphore allows; ``ray`` (sandbox.execution.ray_executor, optional extra) runs each
seed as a Ray task on a cluster node, under the same isolation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from sandbox.execution.run_output import RunOutput
from sandbox.isolation.base import Isolation, Limits
from sandbox.isolation.devices import Passthrough

DEFAULT_EXECUTOR = "local"


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
    # Seeds run on other machines: each node resolves its own GPU (the head's are not theirs),
    # and a seed asks for what its task needs, not a share of the head's cores.
    remote = False

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
