"""What a running handler can learn about its job, and tell of it: `jqs.current_job()`."""

from __future__ import annotations

import contextvars
from typing import Any, NamedTuple, Protocol

from jqs.models import Progress
from jqs.tasks.progress import make_progress


class ProgressSink(Protocol):
    """Where a job's progress reports go (the worker's writer); callable from any thread,
    never blocking."""

    def report(self, report: Progress) -> None:
        """Take the latest report; it is written when the job's turn comes."""
        ...


class JobContext(NamedTuple):
    """The job a handler is running for (a named tuple: one is made per job)."""

    job_id: int
    task: str | None
    queue: str
    attempt: int
    reporter: ProgressSink | None = None  # None: reports are checked, then dropped

    def progress(
        self, progress: float, message: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """Report how far the attempt has got: `progress` from 0 to 1, an optional
        `message` (up to 1,000 characters) and `data` (a JSON object, up to 8 KiB encoded).

        Returns at once; the report is written in the background, at most every 250 ms
        per job (the latest report wins). A bad report raises ValueError. Once the attempt
        has ended or its lease is lost, reports are dropped.
        """
        report = make_progress(progress, message, data)
        if self.reporter is not None:
            self.reporter.report(report)


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
