"""The task registry: register, get and list tasks by name (built-in, a directory, ``hf:<id>``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sandbox.errors import UnknownTaskError
from sandbox.registry import Registry
from sandbox.tasks.builtin import BUILTIN_TASKS
from sandbox.tasks.spec import SplitSizes, TaskSpec

TASKS: Registry[Callable[[], TaskSpec]] = Registry("task")
for _name, _factory in BUILTIN_TASKS.items():
    TASKS.add(_name, _factory)
register_task = TASKS.register  # decorator over a factory that builds the named task


def list_tasks() -> list[str]:
    return TASKS.names()


def get_task(name: str, sizes: SplitSizes | None = None) -> TaskSpec:
    """A registered task by name, a custom task from a directory path, or ``hf:<dataset>``."""
    if name in TASKS:
        return TASKS.get(name)().with_sizes(sizes)
    # Task files read rows through ``datasets``: imported only when a directory or hub id is asked for.
    if Path(name).is_dir():
        from sandbox.tasks.files import task_from_directory

        return task_from_directory(Path(name)).with_sizes(sizes)
    if name.startswith("hf:") and len(name) > 3:
        from sandbox.tasks.files import task_from_hub_dataset

        return task_from_hub_dataset(name).with_sizes(sizes)
    known = ", ".join(TASKS.names())
    raise UnknownTaskError(
        f"unknown task {name!r}: use one of {known}, a directory of jsonl files (see `aar tasks`) "
        "or hf:<dataset> (already in the local Hugging Face cache)"
    )
