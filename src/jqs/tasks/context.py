"""What a running handler can learn about its job: `jqs.current_job()`."""

from __future__ import annotations

import contextvars
from typing import NamedTuple


class JobContext(NamedTuple):
    """The job a handler is running for (a named tuple: one is made per job)."""

    job_id: int
    task: str | None
    queue: str
    attempt: int


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "jqs_current_job", default=None
)


def current_job() -> JobContext:
    """The job being handled; only valid inside a handler."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("current_job() is only available inside a task handler")
    return ctx


def set_current_job(ctx: JobContext) -> contextvars.Token[JobContext | None]:
    """Bind the job for the handler about to run (worker use)."""
    return _current.set(ctx)
