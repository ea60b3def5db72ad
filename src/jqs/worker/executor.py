"""Run one attempt of a claimed job and record how it ended.

An attempt ends in one of five ways: completed; failed and queued again after a backoff
(attempts remain); failed for good; cancelled (someone asked); or abandoned with nothing
written (the lease was lost to another worker, or the process is shutting down and the pool
hands the job back).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from jqs.batching import Batcher
from jqs.errors import DatabaseUnavailable, StoreError
from jqs.jsonutil import RawJSON
from jqs.logging import bind_fields, get_logger
from jqs.models import ClaimedJob, JobStatus
from jqs.outcome import cancelled_result, encode_error, encode_result
from jqs.store import JobStore
from jqs.tasks.context import JobContext, set_current_job
from jqs.tasks.control import FailNow, RetryLater
from jqs.tasks.registry import TaskRegistry, TaskSpec
from jqs.worker.backoff import backoff_delay

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class Attempt:
    """One claimed job being run here, and why it might be interrupted."""

    job: ClaimedJob
    cancel_requested: bool = False
    lease_lost: bool = False
    # Set once the handler has returned: from then on the attempt is only writing its
    # outcome, which is fenced anyway, and cancelling a statement mid-flight would only
    # break the connection it runs on.
    writing: bool = False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff between attempts, and how long to keep retrying a finishing write."""

    backoff_base: float = 1.0
    backoff_max: float = 300.0
    persist_for: float = 30.0
    rng: random.Random | None = None  # for jitter; tests pass a seeded one


class _NotSaved(Exception):
    """A finishing write could not be made; already logged."""


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
        # Attempts finishing together share one UPDATE (see jqs.batching).
        self._completions: Batcher[tuple[int, UUID, RawJSON], bool] = Batcher(store.complete_many)

    async def run(self, attempt: Attempt) -> None:
        """Run the attempt once; a CancelledError from shutdown passes through unwritten."""
        with contextlib.suppress(_NotSaved):
            await self._run(attempt)

    async def _run(self, attempt: Attempt) -> None:
        job = attempt.job
        bind_fields(
            job_id=job.id,
            task=job.task,
            queue=job.queue,
            attempt=job.attempt,
            worker=self._worker_id,
        )
        log.info("job_started", status=JobStatus.PROCESSING.value)
        spec = self._registry.get(job.task)
        if spec is None:
            await self._fail_unknown_task(job)
            return
        started = time.perf_counter()
        try:
            try:
                value = await self._call(spec, job)
            finally:
                attempt.writing = True
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
            return
        except FailNow as exc:
            await self._fail(job, exc, retry=False)
            return
        except RetryLater as exc:
            await self._fail(job, exc, retry=True, delay=exc.delay)
            return
        except Exception as exc:
            await self._fail(job, exc, retry=True)
            return
        try:
            result = encode_result(value)
        except TypeError as exc:
            error = TypeError(f"the handler's return value is not JSON: {exc}")
            await self._fail(job, error, retry=False)
            return
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        outcome = (job.id, job.lease_token, result)
        if await self._persist(lambda: self._completions.submit(outcome)):
            log.info("job_completed", status=JobStatus.COMPLETED.value, duration_ms=duration_ms)
        else:
            self._log_lost()

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
        """Run a finishing write, retrying while the database is briefly unreachable.

        Gives up (_NotSaved, logged) after `persist_for` seconds; the lease then brings the
        job back, so this attempt may be run again, but its end is never lost silently.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.persist_for
        delay = 0.05
        while True:
            try:
                return await write()
            except DatabaseUnavailable as exc:
                if loop.time() + delay > deadline:
                    log.error("job_outcome_not_saved", error=str(exc))
                    raise _NotSaved from exc
                log.warning("job_outcome_retrying", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except StoreError as exc:
                log.error("job_outcome_not_saved", error=str(exc))
                raise _NotSaved from exc

    @staticmethod
    def _log_lost() -> None:
        log.warning("job_lease_lost", detail="another worker owns this job now; outcome dropped")
