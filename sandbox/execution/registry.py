"""The executors by name: ``local`` and ``ray`` (Ray is imported only when asked for)."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.errors import HarnessError
from sandbox.execution.base import Executor, ExecutorOptions
from sandbox.execution.local import LocalExecutor


def _local_factory(options: ExecutorOptions) -> Executor:
    return LocalExecutor(options.parallel, options.slots)


def _ray_factory(options: ExecutorOptions) -> Executor:
    try:
        import ray  # noqa: F401  (only to say what to install when it is missing)
    except ImportError as exc:
        raise HarnessError("--executor ray needs Ray: pip install -e '.[ray]'") from exc
    from sandbox.execution.ray_executor import RayExecutor

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
