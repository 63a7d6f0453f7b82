"""The task registry: register, get and list tasks by name (built-in, a directory, ``hf:<id>``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sandbox.errors import UnknownTaskError
from sandbox.tasks.builtin import BUILTIN_TASKS
from sandbox.tasks.spec import SplitSizes, TaskSpec

_TASKS: dict[str, Callable[[], TaskSpec]] = dict(BUILTIN_TASKS)


def register_task(name: str) -> Callable[[Callable[[], TaskSpec]], Callable[[], TaskSpec]]:
    """Register a factory that builds the named task (decorator)."""

    def deco(factory: Callable[[], TaskSpec]) -> Callable[[], TaskSpec]:
        _TASKS[name] = factory
        return factory

    return deco


def list_tasks() -> list[str]:
    return sorted(_TASKS)


def get_task(name: str, sizes: SplitSizes | None = None) -> TaskSpec:
    """A registered task by name, a custom task from a directory path, or ``hf:<dataset>``."""
    if name in _TASKS:
        return _TASKS[name]().with_sizes(sizes)
    # Task files read rows through ``datasets``: imported only when a directory or hub id is asked for.
    if Path(name).is_dir():
        from sandbox.tasks.files import task_from_directory

        return task_from_directory(Path(name)).with_sizes(sizes)
    if name.startswith("hf:") and len(name) > 3:
        from sandbox.tasks.files import task_from_hub_dataset

        return task_from_hub_dataset(name).with_sizes(sizes)
    known = ", ".join(sorted(_TASKS))
    raise UnknownTaskError(
        f"unknown task {name!r}: use one of {known}, a directory of jsonl files (see `aar tasks`) "
        "or hf:<dataset> (already in the local Hugging Face cache)"
    )
