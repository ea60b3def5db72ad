"""Run one claimed job: find its handler, call it, record how the attempt ended."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor

import structlog

from jqs.errors import StoreError
from jqs.logging import get_logger
from jqs.models import ClaimedJob, JobStatus
from jqs.store import JobStore
from jqs.tasks.context import JobContext, set_current_job
from jqs.tasks.registry import TaskRegistry
from jqs.worker.outcome import encode_error, encode_result

log = get_logger(__name__)


class JobExecutor:
    """Calls handlers (sync ones in a bounded thread pool) and writes the outcome."""

    def __init__(
        self,
        store: JobStore,
        registry: TaskRegistry,
        *,
        worker_id: str,
        threads: ThreadPoolExecutor,
    ) -> None:
        self._store = store
        self._registry = registry
        self._worker_id = worker_id
        self._threads = threads

    async def run(self, job: ClaimedJob) -> None:
        """Run `job` once; CancelledError passes through with nothing written."""
        structlog.contextvars.bind_contextvars(
            job_id=job.id,
            task=job.task,
            queue=job.queue,
            attempt=job.attempt,
            worker=self._worker_id,
        )
        log.info("job_started", status=JobStatus.PROCESSING.value)
        started = time.perf_counter()
        spec = self._registry.get(job.task)
        if spec is None:
            await self._fail_unknown_task(job)
            return
        set_current_job(
            JobContext(job_id=job.id, task=job.task, queue=job.queue, attempt=job.attempt)
        )
        try:
            if spec.is_async:
                value = await spec.fn(job.payload)
            else:
                context = contextvars.copy_context()
                value = await asyncio.get_running_loop().run_in_executor(
                    self._threads, context.run, spec.fn, job.payload
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._fail(job, str(exc) or type(exc).__name__, exc)
            return
        try:
            result = encode_result(value)
        except TypeError as exc:
            await self._fail(job, f"the handler's return value is not JSON: {exc}", exc)
            return
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        if await self._write(self._store.complete(job.id, job.lease_token, result)):
            log.info("job_completed", status=JobStatus.COMPLETED.value, duration_ms=duration_ms)

    async def _fail(self, job: ClaimedJob, message: str, exc: BaseException) -> None:
        error = encode_error(message, kind=type(exc).__name__, attempt=job.attempt, exc=exc)
        if await self._write(self._store.fail(job.id, job.lease_token, error)):
            log.warning(
                "job_failed",
                status=JobStatus.FAILED.value,
                error=message,
                error_type=type(exc).__name__,
            )

    async def _fail_unknown_task(self, job: ClaimedJob) -> None:
        registered = self._registry.names()
        if job.task is None:
            message = 'the payload has no "task" field naming a handler'
        else:
            message = f"no handler is registered for task {job.task!r}"
        error = encode_error(
            message, kind="UnknownTask", attempt=job.attempt, registered=registered
        )
        if await self._write(self._store.fail(job.id, job.lease_token, error)):
            log.warning(
                "job_failed", status=JobStatus.FAILED.value, error=message, error_type="UnknownTask"
            )

    async def _write(self, write: Awaitable[bool]) -> bool:
        """Await a fenced finishing write; False (logged) when it did not apply."""
        try:
            applied = await write
        except StoreError as exc:
            log.error("job_outcome_not_saved", error=str(exc))
            return False
        if not applied:
            log.warning(
                "job_lease_lost", detail="another worker owns this job now; outcome dropped"
            )
        return applied
