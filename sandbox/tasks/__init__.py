"""Task registry: a task is data + a weak model + a strong model + split sizes."""

from sandbox.tasks.registry import (
    LabeledData,
    SplitSizes,
    TaskSpec,
    get_task,
    list_tasks,
    register_task,
)

__all__ = ["LabeledData", "SplitSizes", "TaskSpec", "get_task", "list_tasks", "register_task"]
