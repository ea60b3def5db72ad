"""OutcomeWriter: the one way an attempt's end reaches the store, and where it is logged.

Completed, retried, failed and cancelled attempts are all handed over with `add`, and
whatever ends while one batch is being written goes out with the next (jqs.batching), as
one statement: a lone job is written at once, a busy pool writes hundreds per round trip.
Each write is fenced by the attempt's lease, so a worker that lost its lease changes
nothing. Once a batch is written, each end is logged (`job_completed`, `job_retry_scheduled`,
`job_failed`, `job_cancelled`, or `job_lease_lost` when the lease had gone).

The pool hands an end over and forgets the attempt: nothing here calls back into it. It
reads `pending` (ends not yet written) to bound what it claims, `leases()` to keep those
leases alive meanwhile, and waits for `idle()` before it stops.

While the database is briefly unreachable (or cancels the batch's statement to break a
deadlock), a batch is tried again with backoff for up to
`persist_for` seconds; after that its attempts are left to their leases, which bring the
jobs back to run again. Nothing is lost silently: each such end is logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import NamedTuple, Protocol

from jqs.batching import Batcher
from jqs.clock import Clock
from jqs.errors import DatabaseUnavailable, StoreError, TransientError
from jqs.logging import get_logger, job_event, job_events_at
from jqs.metrics import Metrics, NoMetrics
from jqs.models import ClaimedJob, JobStatus, Lease
from jqs.outcome import Cancelled, Completed, Failed, Final, Retry
from jqs.port import Finish, JobQueue

log = get_logger(__name__)


class _End(NamedTuple):
    job: ClaimedJob
    outcome: Final
    duration_ms: float


class OutcomeWriter:
    """Writes attempts' ends in batches, then logs each."""

    def __init__(
        self,
        queue: JobQueue,
        *,
        clock: Clock,
        persist_for: float,
        worker_id: str,
        max_batch: int = 500,
        metrics: Metrics | None = None,
    ) -> None:
        self._queue = queue
        self._metrics = metrics or NoMetrics()
        self._clock = clock
        self._persist_for = persist_for
        self._worker_id = worker_id
        self._batcher: Batcher[_End, None] = Batcher(self._flush, max_size=max_batch)
        self._unwritten: set[Lease] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._progress = asyncio.Event()

    @property
    def pending(self) -> int:
        """Ends handed over and not written yet."""
        return len(self._unwritten)

    def leases(self) -> list[Lease]:
        """The leases of the ends not written yet (still ours until they are)."""
        return list(self._unwritten)

    def add(self, job: ClaimedJob, outcome: Final, duration_ms: float) -> None:
        """Hand over the end of `job`'s attempt; it goes out with the next batch."""
        self._unwritten.add(job.lease)
        self._idle.clear()
        self._batcher.add(_End(job, outcome, duration_ms))

    async def idle(self) -> None:
        """Return once every end handed over has been written (or given up on)."""
        await self._idle.wait()

    async def progress(self) -> None:
        """Return once the next batch has been written (at once if nothing is pending)."""
        if self._unwritten:
            self._progress.clear()
            await self._progress.wait()

    async def _flush(self, ends: Sequence[_End]) -> Sequence[None]:
        written = await self._write([Finish(end.job.lease, end.outcome) for end in ends])
        for end, ok in zip(ends, written, strict=True):
            self._unwritten.discard(end.job.lease)
            if ok is not None:
                if ok:
                    self._count(end)
                self._log(end, ok)
        if not self._unwritten:
            self._idle.set()
        self._progress.set()
        return [None] * len(ends)

    async def _write(self, finishes: list[Finish]) -> Sequence[bool | None]:
        """Per end: True written, False lease lost, None not saved (logged here)."""
        deadline = self._clock.monotonic() + self._persist_for
        delay = 0.05
        while True:
            try:
                return await self._queue.finish(finishes)
            except (DatabaseUnavailable, TransientError) as exc:
                if self._clock.monotonic() + delay > deadline:
                    log.error("job_outcome_not_saved", error=str(exc), jobs=len(finishes))
                    return [None] * len(finishes)
                log.warning("job_outcome_retrying", error=str(exc), retry_in=delay)
                await self._clock.sleep(delay)
                delay = min(delay * 2, 2.0)
            except StoreError as exc:
                log.error("job_outcome_not_saved", error=str(exc), jobs=len(finishes))
                return [None] * len(finishes)
            except Exception as exc:  # a bug must not leave the ends waiting forever
                log.error("job_outcome_not_saved", error=repr(exc), jobs=len(finishes))
                return [None] * len(finishes)

    def _count(self, end: _End) -> None:
        outcome = end.outcome
        if isinstance(outcome, Completed):
            status = JobStatus.COMPLETED
        elif isinstance(outcome, Retry):
            status = JobStatus.QUEUED
        elif isinstance(outcome, Failed):
            status = JobStatus.FAILED
        else:
            status = JobStatus.CANCELLED
        self._metrics.finished(end.job.queue, end.job.task, status, end.duration_ms / 1000)

    def _log(self, end: _End, written: bool) -> None:
        log_end(end.job, end.outcome, written, worker=self._worker_id, duration_ms=end.duration_ms)


class Ended(Protocol):
    """What a log line tells of the job whose attempt ended."""

    @property
    def id(self) -> int: ...
    @property
    def task(self) -> str | None: ...
    @property
    def queue(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...


def log_end(
    job: Ended,
    outcome: Final,
    written: bool,
    *,
    worker: str | None,
    duration_ms: float | None = None,
) -> None:
    """Log an attempt's end once its write is done (`written` False: the lease was lost)."""
    if written and isinstance(outcome, Completed) and not job_events_at("info"):
        return  # the common case, at level warning: build nothing
    line: dict[str, object] = {
        "job_id": job.id,
        "task": job.task,
        "queue": job.queue,
        "attempt": job.attempt,
        "worker": worker,
    }
    level = "warning"
    if not written:
        line["detail"] = "another worker owns this job now; outcome dropped"
        line["event"] = "job_lease_lost"
    elif isinstance(outcome, Completed):
        level = "info"
        line["status"] = JobStatus.COMPLETED.value
        if duration_ms is not None:
            line["duration_ms"] = duration_ms
        line["event"] = "job_completed"
    elif isinstance(outcome, Retry):
        # A handler's RetryLater is its plan, not a failure: info, not warning.
        level = "info" if outcome.requested else "warning"
        line["status"] = JobStatus.QUEUED.value
        line["error"] = outcome.error.message
        line["error_type"] = outcome.error.kind
        line["retry_in"] = round(outcome.delay, 3)
        line["max_attempts"] = job.max_attempts
        line["event"] = "job_retry_scheduled"
    elif isinstance(outcome, Failed):
        line["status"] = JobStatus.FAILED.value
        line["error"] = outcome.error.message
        line["error_type"] = outcome.error.kind
        line["max_attempts"] = job.max_attempts
        line["event"] = "job_failed"
    elif isinstance(outcome, Cancelled):
        level = "info"
        line["status"] = JobStatus.CANCELLED.value
        line["event"] = "job_cancelled"
    line["logger_name"] = __name__
    job_event(level, line)
