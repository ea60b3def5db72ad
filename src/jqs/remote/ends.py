"""Ends: the outcomes that workers send over HTTP, written as an in-process worker's are.

A worker reports that an attempt completed or failed, presenting the attempt's lease.
The attempt is read by its lease (jqs.port.JobQueue.held), the outcome decided as
the in-process worker decides it (jqs.worker.executor.after_failure: retry while attempts
remain, after the worker's `retry_in` or the backoff; failed after the last, or at once when
the worker says `final`), and written by the store's fenced `finish`, many in one
statement. A job that was asked to cancel ends `cancelled`, whatever the report. A lease
that no longer holds changes nothing: the report is refused, per item.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jqs.jsonutil import RawJSON
from jqs.models import HeldJob, JobStatus, Lease
from jqs.outcome import Cancelled, Completed, Failed, Final, Retry, attempt_error, cancelled_result
from jqs.port import Finish, JobQueue
from jqs.worker.executor import RetryPolicy, after_failure
from jqs.worker.outcomes import log_end


@dataclass(frozen=True, slots=True)
class ReportedError:
    """Why a worker's attempt failed, as it tells it."""

    type: str
    message: str
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """One attempt's end as a worker reports it: `result` when it completed, else `error`."""

    lease: Lease
    result: RawJSON | None = None
    error: ReportedError | None = None
    retry_in: float | None = None  # run again after this many seconds, attempts allowing
    final: bool = False  # do not run again


class Verdict(enum.Enum):
    """What became of a report."""

    WRITTEN = "written"
    LEASE_LOST = "lease_lost"  # the lease does not hold (any more): nothing was written
    FORBIDDEN = "forbidden"  # the job is outside what the worker's key may touch


@dataclass(frozen=True, slots=True)
class Written:
    """A report's verdict and, when written, where the job is now."""

    job_id: int
    verdict: Verdict
    status: JobStatus | None = None
    retry_in: float | None = None


class Ends:
    """Decides and writes the outcomes that workers report."""

    def __init__(
        self, queue: JobQueue, *, policy: RetryPolicy, rng: random.Random | None = None
    ) -> None:
        self._queue = queue
        self._policy = policy
        self._rng = rng or random.Random()  # jitter only, not security

    async def write(
        self,
        reports: Sequence[Report],
        may_touch: Callable[[str, str | None], bool] = lambda queue, task: True,
    ) -> list[Written]:
        """Write each report whose lease holds, in one statement; per report, the verdict."""
        held = {job.id: job for job in await self._queue.held([r.lease for r in reports])}
        verdicts: list[Written | None] = []
        finishes: list[Finish] = []
        decided: list[tuple[int, HeldJob, Final]] = []  # (index, job, outcome)
        for index, report in enumerate(reports):
            job = held.get(report.lease.job_id)
            if job is None:
                verdicts.append(Written(report.lease.job_id, Verdict.LEASE_LOST))
                continue
            if not may_touch(job.queue, job.task):
                verdicts.append(Written(job.id, Verdict.FORBIDDEN))
                continue
            outcome = self._outcome(job, report)
            verdicts.append(None)
            finishes.append(Finish(report.lease, outcome))
            decided.append((index, job, outcome))
        written = await self._queue.finish(finishes) if finishes else []
        for (index, job, outcome), ok in zip(decided, written, strict=True):
            log_end(job, outcome, ok, worker=job.worker_id)
            verdicts[index] = (
                Written(job.id, Verdict.WRITTEN, *_where(outcome))
                if ok
                else Written(job.id, Verdict.LEASE_LOST)
            )
        return [v for v in verdicts if v is not None]

    def _outcome(self, job: HeldJob, report: Report) -> Final:
        if job.cancel_requested:
            return Cancelled(cancelled_result(job.attempt))
        if report.error is None:
            return Completed(report.result if report.result is not None else RawJSON(b"null"))
        error = attempt_error(
            report.error.message,
            kind=report.error.type,
            attempt=job.attempt,
            trace=report.error.traceback,
        )
        if report.final:
            return Failed(error)
        return after_failure(
            error,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            policy=self._policy,
            rng=self._rng,
            delay=report.retry_in,
            requested=report.retry_in is not None,
        )


def _where(outcome: Final) -> tuple[JobStatus, float | None]:
    if isinstance(outcome, Completed):
        return JobStatus.COMPLETED, None
    if isinstance(outcome, Retry):
        return JobStatus.QUEUED, outcome.delay
    if isinstance(outcome, Failed):
        return JobStatus.FAILED, None
    return JobStatus.CANCELLED, None
