"""Run one attempt of a claimed job and record how it ended.

An attempt ends in one of five ways: completed; failed and queued again after a backoff
(attempts remain); failed for good; cancelled (someone asked); or abandoned with nothing
written (the lease was lost to another worker, or the process is shutting down and the pool
hands the job back).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from jqs.logging import bind_fields, get_logger
from jqs.models import ClaimedJob, JobStatus
from jqs.outcome import cancelled_result, encode_error, encode_result
from jqs.store import JobStore
from jqs.tasks.context import JobContext, set_current_job
from jqs.tasks.control import FailNow, RetryLater
from jqs.tasks.registry import TaskRegistry, TaskSpec
from jqs.worker.backoff import backoff_delay
from jqs.worker.completions import CompletionWriter
from jqs.worker.persist import NotSaved, persist

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(slots=True, eq=False)
class Attempt:
    """One claimed job being run here, and why it might be interrupted."""

    job: ClaimedJob
    cancel_requested: bool = False
    lease_lost: bool = False
    # Set once the handler has returned: from then on the attempt is only writing its
    # outcome, which is fenced anyway, and cancelling a statement mid-flight would only
    # break the connection it runs on.
    writing: bool = False
    # Told when the handler returns: its slot is free for the next job while the outcome
    # is still being written, so claiming the next batch overlaps writing this one.
    on_writing: Callable[[], None] | None = None
    # Told once nothing more will happen for this attempt (outcome written or abandoned).
    on_finished: Callable[[Attempt], None] | None = None
    duration_ms: float = 0.0

    def start_writing(self) -> None:
        """The handler is done; only the outcome's write remains."""
        if not self.writing:
            self.writing = True
            if self.on_writing is not None:
                self.on_writing()

    def finish(self) -> None:
        """Nothing more is left to do for this attempt."""
        if self.on_finished is not None:
            self.on_finished(self)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff between attempts, and how long to keep retrying a finishing write."""

    backoff_base: float = 1.0
    backoff_max: float = 300.0
    persist_for: float = 30.0
    rng: random.Random | None = None  # for jitter; tests pass a seeded one


class _HandlerTimeout(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"the attempt timed out after {seconds:g}s")


class JobExecutor:
    """Calls handlers (sync ones in a bounded thread pool) and writes the outcome."""

    def __init__(
        self,
        store: JobStore,
        registry: TaskRegistry,
        *,
        worker_id: str,
        threads: ThreadPoolExecutor,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._worker_id = worker_id
        self._threads = threads
        self._policy = policy or RetryPolicy()
        self._rng = self._policy.rng or random.Random()  # jitter only, not security
        # Attempts finishing together share one UPDATE, and no task waits for it.
        self._completions: CompletionWriter[Attempt] = CompletionWriter(
            store, self._completed, persist_for=self._policy.persist_for
        )

    async def run(self, attempt: Attempt) -> None:
        """Run the attempt once, then `attempt.finish()` once its outcome is settled.

        A CancelledError from shutdown passes through unwritten (the pool hands it back).
        """
        handed_over = False
        try:
            handed_over = await self._run(attempt)
        except NotSaved:
            pass
        except Exception as exc:  # a bug here must not leave the attempt in limbo
            log.error("job_runner_crashed", error=repr(exc))
        finally:
            if not handed_over:
                attempt.start_writing()  # (already so, unless something failed early)
                attempt.finish()

    async def _run(self, attempt: Attempt) -> bool:
        """Returns True when the outcome went to the completion writer, which finishes it."""
        job = attempt.job
        bind_fields(**self._job_fields(job))
        log.info("job_started", status=JobStatus.PROCESSING.value)
        spec = self._registry.get(job.task)
        if spec is None:
            attempt.start_writing()
            await self._fail_unknown_task(job)
            return False
        started = time.perf_counter()
        try:
            try:
                value = await self._call(spec, job)
            finally:
                attempt.start_writing()
        except asyncio.CancelledError:
            if not (attempt.cancel_requested or attempt.lease_lost):
                raise  # shutdown: the pool hands the job back
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            if attempt.lease_lost:
                log.warning("job_lease_lost", detail="the lease expired; another worker owns it")
            else:
                await self._cancelled(job)
            return False
        except FailNow as exc:
            await self._fail(job, exc, retry=False)
            return False
        except RetryLater as exc:
            await self._fail(job, exc, retry=True, delay=exc.delay)
            return False
        except Exception as exc:
            await self._fail(job, exc, retry=True)
            return False
        try:
            result = encode_result(value)
        except TypeError as exc:
            error = TypeError(f"the handler's return value is not JSON: {exc}")
            await self._fail(job, error, retry=False)
            return False
        attempt.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        self._completions.add(attempt, job.id, job.lease_token, result)
        return True

    def _job_fields(self, job: ClaimedJob) -> dict[str, Any]:
        """What every log line about this attempt carries."""
        return {
            "job_id": job.id,
            "task": job.task,
            "queue": job.queue,
            "attempt": job.attempt,
            "worker": self._worker_id,
        }

    def _completed(self, attempt: Attempt, saved: bool | None) -> None:
        # Called from the completion writer, outside the job's task: its bound fields are
        # not in scope here, so they are passed explicitly.
        if saved and log.is_enabled_for(logging.INFO):
            log.info(
                "job_completed",
                **self._job_fields(attempt.job),
                status=JobStatus.COMPLETED.value,
                duration_ms=attempt.duration_ms,
            )
        elif saved is False:
            self._log_lost(**self._job_fields(attempt.job))
        attempt.finish()

    async def _call(self, spec: TaskSpec, job: ClaimedJob) -> Any:
        set_current_job(
            JobContext(job_id=job.id, task=job.task, queue=job.queue, attempt=job.attempt)
        )
        timeout = job.timeout_seconds or spec.options.timeout
        if timeout is None:
            return await self._invoke(spec, job)
        try:
            async with asyncio.timeout(timeout) as scope:
                # On timeout a sync handler's thread cannot be stopped; it runs on, unheeded.
                return await self._invoke(spec, job)
        except TimeoutError:
            if scope.expired():
                raise _HandlerTimeout(timeout) from None
            raise

    async def _invoke(self, spec: TaskSpec, job: ClaimedJob) -> Any:
        if spec.is_async:
            return await spec.fn(job.payload)
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, context.run, spec.fn, job.payload)

    async def _fail(
        self, job: ClaimedJob, exc: BaseException, *, retry: bool, delay: float | None = None
    ) -> None:
        message = str(exc) or type(exc).__name__
        kind = "Timeout" if isinstance(exc, _HandlerTimeout) else type(exc).__name__
        show_trace = not isinstance(exc, _HandlerTimeout | FailNow | RetryLater)
        error = encode_error(
            message, kind=kind, attempt=job.attempt, exc=exc if show_trace else None
        )
        if delay is None:
            delay = backoff_delay(
                job.attempt,
                base=self._policy.backoff_base,
                cap=self._policy.backoff_max,
                rng=self._rng,
            )
        outcome = await self._persist(
            lambda: self._store.fail_attempt(
                job.id, job.lease_token, error, retry=retry, retry_in=delay
            )
        )
        if outcome is None:
            self._log_lost()
            return
        status, run_at = outcome
        if status is JobStatus.QUEUED:
            log.warning(
                "job_retry_scheduled",
                status=status.value,
                error=message,
                error_type=kind,
                retry_in=round(delay, 3),
                run_at=run_at.isoformat(),
                max_attempts=job.max_attempts,
            )
        else:
            log.warning(
                "job_failed",
                status=status.value,
                error=message,
                error_type=kind,
                max_attempts=job.max_attempts,
            )

    async def _cancelled(self, job: ClaimedJob) -> None:
        result = cancelled_result(job.attempt)
        if await self._persist(
            lambda: self._store.finish_cancelled(job.id, job.lease_token, result)
        ):
            log.info("job_cancelled", status=JobStatus.CANCELLED.value)
        else:
            self._log_lost()

    async def _fail_unknown_task(self, job: ClaimedJob) -> None:
        if job.task is None:
            message = 'the payload has no "task" field naming a handler'
        else:
            message = f"no handler is registered for task {job.task!r}"
        error = encode_error(
            message, kind="UnknownTask", attempt=job.attempt, registered=self._registry.names()
        )
        # No retry: another attempt on this process would find the same registry.
        outcome = await self._persist(
            lambda: self._store.fail_attempt(job.id, job.lease_token, error, retry=False)
        )
        if outcome is None:
            self._log_lost()
        else:
            log.warning(
                "job_failed", status=outcome[0].value, error=message, error_type="UnknownTask"
            )

    async def _persist(self, write: Callable[[], Awaitable[T]]) -> T:
        return await persist(write, self._policy.persist_for)

    @staticmethod
    def _log_lost(**fields: Any) -> None:
        log.warning(
            "job_lease_lost", detail="another worker owns this job now; outcome dropped", **fields
        )
