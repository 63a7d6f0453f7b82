"""The executors by name: ``local`` and ``ray`` (Ray is imported only when asked for)."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.errors import HarnessError
from sandbox.execution.base import Executor, ExecutorOptions
from sandbox.execution.local import LocalExecutor
from sandbox.registry import Registry


def _local_factory(options: ExecutorOptions) -> Executor:
    return LocalExecutor(options.parallel, options.slots)


def _ray_factory(options: ExecutorOptions) -> Executor:
    try:
        import ray  # noqa: F401  (only to say what to install when it is missing)
    except ImportError as exc:
        raise HarnessError("--executor ray needs Ray: pip install -e '.[ray]'") from exc
    from sandbox.execution.ray_executor import RayExecutor

    return RayExecutor(options)


EXECUTORS: Registry[Callable[[ExecutorOptions], Executor]] = Registry("executor")
EXECUTORS.add("local", _local_factory)
EXECUTORS.add("ray", _ray_factory)
register_executor = EXECUTORS.register


def list_executors() -> list[str]:
    return EXECUTORS.names()


def get_executor(options: ExecutorOptions | None = None) -> Executor:
    """A new executor as ``options.config.name`` says; ``HarnessError`` (one line) if unknown
    or not installed."""
    options = options or ExecutorOptions()
    return EXECUTORS.get(options.config.name)(options)
