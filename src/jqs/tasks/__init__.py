"""Task handlers: the @task marker, the registry, the built-in handlers."""

from jqs.tasks.context import JobContext, current_job
from jqs.tasks.registry import TaskRegistry, TaskSpec, task

__all__ = ["JobContext", "TaskRegistry", "TaskSpec", "current_job", "task"]
