"""Executor: run one attempt of a claimed job and say how it ended. It writes nothing.

`run(attempt)` calls the job's handler (a sync one in the pool's threads), within the job's
timeout, and turns what happened into an Outcome (jqs.outcome):

- the handler returned JSON: Completed;
- it raised, timed out, or returned something that is not JSON: Retry after a backoff while
  attempts remain, else Failed (FailNow fails at once; RetryLater picks its own delay);
- no handler is registered for the task: Failed (another attempt here would find none);
- the pool interrupted it: Cancelled, LeaseLost or HandedBack, by the attempt's `interrupt`.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from jqs.clock import Clock
from jqs.models import ClaimedJob
from jqs.outcome import (
    AttemptError,
    Cancelled,
    Completed,
    Failed,
    HandedBack,
    LeaseLost,
    Outcome,
    Retry,
    attempt_error,
    cancelled_result,
    encode_result,
)
from jqs.tasks.context import JobContext, set_current_job
from jqs.tasks.control import FailNow, RetryLater
from jqs.tasks.registry import TaskRegistry, TaskSpec
from jqs.worker.attempt import Attempt, Interrupt
from jqs.worker.backoff import backoff_delay


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long a failed job waits before its next attempt (jqs.worker.backoff)."""

    backoff_base: float = 1.0
    backoff_max: float = 300.0


def after_failure(
    error: AttemptError,
    *,
    attempt: int,
    max_attempts: int,
    policy: RetryPolicy,
    rng: random.Random,
    delay: float | None = None,
    requested: bool = False,
) -> Retry | Failed:
    """How a failed attempt ends, wherever it ran (here or in an HTTP worker): Retry while
    attempts remain, after `delay` seconds or else the policy's backoff; Failed after the
    last. `requested`: the worker asked to run again later (not a failure to warn of)."""
    if attempt >= max_attempts:
        return Failed(error)
    if delay is None:
        delay = backoff_delay(attempt, base=policy.backoff_base, cap=policy.backoff_max, rng=rng)
    return Retry(error, delay, requested=requested)


class _HandlerTimeout(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"the attempt timed out after {seconds:g}s")


class Executor:
    """Calls handlers and says how each attempt ended."""

    def __init__(
        self,
        registry: TaskRegistry,
        *,
        clock: Clock,
        threads: ThreadPoolExecutor,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._threads = threads
        self._policy = policy or RetryPolicy()
        self._rng = rng or random.Random()  # jitter only, not security

    async def run(self, attempt: Attempt) -> Outcome:
        """Run the attempt's handler once; how it ended."""
        job = attempt.job
        spec = self._registry.get(job.task)
        if spec is None:
            return Failed(self._unknown_task(job))
        try:
            value = await self._call(spec, attempt)
        except asyncio.CancelledError:
            if attempt.interrupt is None:
                raise  # not the pool's doing: let it through
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            if attempt.interrupt is Interrupt.CANCEL:
                return Cancelled(cancelled_result(job.attempt))
            if attempt.interrupt is Interrupt.LEASE_LOST:
                return LeaseLost()
            return HandedBack()
        except FailNow as exc:
            return Failed(self._error(job, exc))
        except RetryLater as exc:
            return self._failed(job, exc, delay=exc.delay)
        except Exception as exc:
            return self._failed(job, exc)
        try:
            return Completed(encode_result(value))
        except TypeError as exc:
            error = TypeError(f"the handler's return value is not JSON: {exc}")
            return Failed(self._error(job, error))

    def _failed(self, job: ClaimedJob, exc: Exception, delay: float | None = None) -> Outcome:
        """Retry while attempts remain, else Failed."""
        return after_failure(
            self._error(job, exc),
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            policy=self._policy,
            rng=self._rng,
            delay=delay,
            requested=isinstance(exc, RetryLater),
        )

    @staticmethod
    def _error(job: ClaimedJob, exc: Exception) -> AttemptError:
        message = str(exc) or type(exc).__name__
        kind = "Timeout" if isinstance(exc, _HandlerTimeout) else type(exc).__name__
        # A timeout or the handler's own FailNow/RetryLater say all there is; a traceback
        # of those would only point into JQS.
        trace = not isinstance(exc, _HandlerTimeout | FailNow | RetryLater)
        return attempt_error(message, kind=kind, attempt=job.attempt, exc=exc if trace else None)

    def _unknown_task(self, job: ClaimedJob) -> AttemptError:
        if job.task is None:
            message = 'the payload has no "task" field naming a handler'
        else:
            message = f"no handler is registered for task {job.task!r}"
        return attempt_error(
            message, kind="UnknownTask", attempt=job.attempt, registered=self._registry.names()
        )

    async def _call(self, spec: TaskSpec, attempt: Attempt) -> Any:
        job = attempt.job
        set_current_job(
            JobContext(job.id, job.task, job.queue, job.attempt, reporter=attempt.progress)
        )
        timeout = job.timeout or spec.options.timeout
        if timeout is None:
            return await self._invoke(spec, job)
        try:
            async with self._clock.timeout(timeout) as deadline:
                # On timeout a sync handler's thread cannot be stopped; it runs on, unheeded.
                return await self._invoke(spec, job)
        except TimeoutError:
            if deadline.expired():
                raise _HandlerTimeout(timeout) from None
            raise

    def _invoke(self, spec: TaskSpec, job: ClaimedJob) -> Awaitable[Any]:
        """The handler's call, to be awaited: its own coroutine, or a sync one's thread."""
        if spec.is_async:
            awaitable: Awaitable[Any] = spec.fn(job.payload)
            return awaitable
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._threads, context.run, spec.fn, job.payload)
