"""Task handlers: the @task marker, the registry the workers look names up in.

`@task` only marks a function; it registers nothing globally. The composition root builds
a TaskRegistry from the modules named in JQS_TASKS (plus the built-ins), so two services in
one process, or two tests, never share hidden state.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar, overload

from jqs.errors import DuplicateTask
from jqs.tasks.names import check_cron, check_queue_name

Handler = Callable[[dict[str, Any]], Any]
F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__jqs_task__"


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """What a task may set for its jobs; a job's own options win over these."""

    max_attempts: int | None = None
    timeout: float | None = None
    queue: str | None = None
    cron: str | None = None

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.queue is not None:
            check_queue_name(self.queue)
        if self.cron is not None:
            check_cron(self.cron)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A named handler, how to call it, and its job defaults."""

    name: str
    fn: Handler
    is_async: bool
    options: TaskOptions = TaskOptions()

    @classmethod
    def of(cls, name: str, fn: Handler, options: TaskOptions | None = None) -> TaskSpec:
        """Describe `fn` as the handler of `name`."""
        return cls(
            name=name,
            fn=fn,
            is_async=inspect.iscoroutinefunction(fn),
            options=options or TaskOptions(),
        )


@overload
def task(name: F, /) -> F: ...
@overload
def task(
    name: str | None = None,
    /,
    *,
    max_attempts: int | None = None,
    timeout: float | None = None,
    queue: str | None = None,
    cron: str | None = None,
) -> Callable[[F], F]: ...
def task(
    name: str | Callable[..., Any] | None = None,
    /,
    *,
    max_attempts: int | None = None,
    timeout: float | None = None,
    queue: str | None = None,
    cron: str | None = None,
) -> Any:
    """Mark a function (async or sync) as the handler of `payload["task"] == name`.

    Use `@task("send_email")`, `@task()` or bare `@task` (the function's name is used).
    The handler receives the payload dict; what it returns (JSON) becomes the job's result.
    `max_attempts`, `timeout` (seconds per attempt) and `queue` apply to jobs that do not
    set their own. `cron` ("*/5 * * * *", a sixth field for seconds) enqueues
    `{"task": name}` on that schedule, once per scheduled time across all processes.
    """
    options = TaskOptions(max_attempts=max_attempts, timeout=timeout, queue=queue, cron=cron)

    def mark(fn: F, task_name: str | None) -> F:
        if not callable(fn):
            raise TypeError("@task decorates functions")
        setattr(fn, _MARK, (task_name or fn.__name__, options))
        return fn

    if callable(name):
        return mark(name, None)
    return lambda fn: mark(fn, name)


def marked_tasks(module: ModuleType) -> list[TaskSpec]:
    """Every @task-marked function reachable as an attribute of `module`."""
    found: dict[int, TaskSpec] = {}
    for value in vars(module).values():
        mark = getattr(value, _MARK, None)
        if isinstance(mark, tuple) and callable(value):
            task_name, options = mark
            found.setdefault(id(value), TaskSpec.of(task_name, value, options))
    return list(found.values())


class TaskRegistry:
    """Handlers by task name."""

    def __init__(self, specs: Iterable[TaskSpec] = ()) -> None:
        self._specs: dict[str, TaskSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: TaskSpec) -> None:
        """Register one handler; a second handler for one name is an error."""
        existing = self._specs.get(spec.name)
        if existing is not None and existing.fn is not spec.fn:
            raise DuplicateTask(f"task {spec.name!r} has two handlers")
        self._specs[spec.name] = spec

    def register(self, name: str, fn: Handler | Callable[..., Awaitable[Any]]) -> None:
        """Register `fn` as the handler of `name`."""
        self.add(TaskSpec.of(name, fn))

    def get(self, name: str | None) -> TaskSpec | None:
        """The handler for `name`, or None."""
        return self._specs.get(name) if name is not None else None

    def names(self) -> list[str]:
        """Registered task names, sorted."""
        return sorted(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs
