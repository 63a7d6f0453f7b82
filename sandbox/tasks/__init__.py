"""Task registry: a task is data + a weak model + a strong model + split sizes."""

from sandbox.tasks.registry import get_task, list_tasks, register_task
from sandbox.tasks.spec import LabeledData, SplitSizes, TaskSpec

__all__ = ["LabeledData", "SplitSizes", "TaskSpec", "get_task", "list_tasks", "register_task"]
