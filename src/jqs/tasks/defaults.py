"""Job options resolved at enqueue: the job's own, else its task's, else the settings'."""

from __future__ import annotations

from dataclasses import dataclass

from jqs.models import DEFAULT_QUEUE
from jqs.tasks.registry import TaskOptions, TaskRegistry


@dataclass(frozen=True, slots=True)
class JobDefaults:
    """The settings' defaults, and the registry whose tasks may override them."""

    registry: TaskRegistry
    max_attempts: int = 3
    timeout: float | None = None

    def resolve(
        self, task: str | None, *, max_attempts: int | None, timeout: float | None
    ) -> tuple[int, float | None]:
        """(max_attempts, timeout seconds) for a new job of `task`."""
        options = self._options(task)
        attempts = max_attempts or (options and options.max_attempts) or self.max_attempts
        limit = timeout or (options and options.timeout) or self.timeout
        return attempts, limit

    def queue(self, task: str | None, queue: str | None) -> str:
        """The queue for a new job of `task`: its own, else its task's, else `default`."""
        options = self._options(task)
        return queue or (options and options.queue) or DEFAULT_QUEUE

    def _options(self, task: str | None) -> TaskOptions | None:
        spec = self.registry.get(task)
        return spec.options if spec is not None else None
