"""`AsyncClient`: `Client`'s mirror for asyncio, method for method."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import aconnect_sse

from jqs.client import calls
from jqs.client.calls import UNSET, Call
from jqs.client.config import LIMITS, ClientConfig, Retries
from jqs.client.errors import TransportError, ValidationError, error_for, transport_error
from jqs.client.models import (
    ApiKey,
    ApiKeys,
    CreatedKey,
    Event,
    Job,
    Jobs,
    JobSpec,
    JobStatus,
    JSONObject,
    Queues,
    QueueSettings,
)
from jqs.client.streams import stream_of
from jqs.client.waiting import WaitPlan

T = TypeVar("T")


class AsyncClient:
    """A connection to one JQS server. Arguments left out come from JQS_URL and
    JQS_API_KEY. Use it as a context manager, or call `aclose()`.

    `transport`: an httpx transport to send through instead (tests use MockTransport).
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: Retries | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = ClientConfig.from_env(url, api_key, timeout=timeout, retries=retries)
        self._http = httpx.AsyncClient(
            base_url=self.config.url,
            headers=self.config.headers(),
            timeout=self.config.timeout,
            limits=LIMITS,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def send(self, call: Call[T]) -> T:
        """Send one call, again after a 429 or 503 (as Retry-After says) or a failed
        connection, within the client's `retries`."""
        retry = 0
        timeout = self.config.timeout + (call.timeout or 0.0)
        while True:
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    headers=call.headers,
                    timeout=timeout,
                )
            except httpx.TransportError as exc:
                delay = calls.delay_after_error(
                    self.config.retries, retry, exc, replayable=call.replayable
                )
                if delay is None:
                    raise transport_error(self.config.url, exc) from exc
            else:
                delay = calls.delay_after(self.config.retries, retry, response)
                if delay is None:
                    return calls.outcome(call, response)
            retry += 1
            await asyncio.sleep(delay)

    async def submit(
        self,
        payload: JSONObject,
        *,
        queue: str | None = None,
        priority: int | None = None,
        run_at: datetime | None = None,
        delay: float | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the job's option, as in Client
        idempotency_key: str | None = None,
        wait: float | None = None,
    ) -> Job:
        """Submit a job. Options left out take the task's or the server's defaults.

        Sent with an Idempotency-Key (a new one unless given), so that a retry never makes
        a second job. `wait`: return once the job has finished, or after that many seconds
        with the job as it stands (WaitTimeout is not raised here).
        """
        spec = JobSpec(payload, queue, priority, run_at, delay, max_attempts, timeout)
        call = calls.submit(spec, idempotency_key=idempotency_key, wait=wait)
        started = time.monotonic()
        try:
            job = await self.send(call)
        except ValidationError as exc:
            if wait is None or not calls.is_wait_unsupported(exc):
                raise
            job = await self.send(calls.without_wait(call))
        if wait is None or job.finished:
            return job
        return await self._wait(job, WaitPlan(wait, started=started), raise_timeout=False)

    async def submit_many(self, jobs: Iterable[JobSpec | JSONObject], *, chunk: int = 500) -> Jobs:
        """Submit jobs (payloads, or JobSpecs with options) in batches of `chunk`; each
        batch is made whole or not at all, in order."""
        made: Jobs = []
        batch: list[JobSpec] = []
        for job in jobs:
            batch.append(calls.spec_of(job))
            if len(batch) >= chunk:
                added: Jobs = await self.send(calls.submit_many(batch))
                made.extend(added)
                batch = []
        if batch:
            added = await self.send(calls.submit_many(batch))
            made.extend(added)
        return made

    async def get(self, job_id: int, *, wait: float | None = None) -> Job:
        """The job; with `wait` (seconds, at most 60), once it has finished or when the
        wait runs out, as it stands then."""
        return await self.send(calls.get(job_id, wait=wait))

    async def wait(
        self,
        job_id: int,
        timeout: float | None = None,  # noqa: ASYNC109 - as in Client.wait
        *,
        poll: float = 0.5,
    ) -> Job:
        """The job once it has finished; WaitTimeout after `timeout` seconds (None: no
        limit). The server holds each request until the job ends (or polls every `poll`
        seconds against a server that cannot)."""
        plan = WaitPlan(timeout, poll)
        return await self._wait(await self.get(job_id), plan, raise_timeout=True)

    async def _wait(self, job: Job, plan: WaitPlan, *, raise_timeout: bool) -> Job:
        while not job.finished:
            step = plan.next_wait()
            if step is None:
                if raise_timeout:
                    raise plan.timed_out(job)
                return job
            asked = time.monotonic()
            job = await self.get(job.id, wait=step)
            if not job.finished:
                await asyncio.sleep(plan.pause_after(step, time.monotonic() - asked))
        return job

    async def list(
        self,
        *,
        status: JobStatus | str | None = None,
        task: str | None = None,
        page_size: int = 100,
        before_id: int | None = None,
    ) -> AsyncIterator[Jobs]:
        """Pages of jobs, newest first, read page by page as the loop goes: each page
        starts below the last id of the one before (jobs made meanwhile do not shift it)."""
        while True:
            jobs = await self.send(
                calls.page(limit=page_size, before_id=before_id, status=status, task=task)
            )
            if not jobs:
                return
            yield jobs
            before_id = jobs[-1].id

    async def cancel(self, job_id: int) -> Job:
        """Cancel a job: a queued one at once, a running one within about a second."""
        return await self.send(calls.cancel(job_id))

    async def retry(self, job_id: int) -> Job:
        """Run a failed or cancelled job again, with a fresh set of attempts."""
        return await self.send(calls.retry(job_id))

    async def events(
        self,
        job_id: int | None = None,
        *,
        queue: str | None = None,
        task: str | None = None,
        type: str | None = None,
        last_event_id: str | None = None,
    ) -> AsyncIterator[Event]:
        """Events as they happen: one job's (ending after its final event), or every job's
        that match the filters (never ending; break out of the loop). A dropped connection
        is reopened where it left off (Last-Event-ID), within the client's retries."""
        state = stream_of(job_id, queue=queue, task=task, type=type, last_event_id=last_event_id)
        retries = self.config.retries
        failures = 0
        timeout = httpx.Timeout(self.config.timeout, read=None)
        while not state.done:
            try:
                async with aconnect_sse(
                    self._http,
                    "GET",
                    state.path,
                    params=state.params,
                    headers=state.headers(),
                    timeout=timeout,
                ) as source:
                    response = source.response
                    if not response.is_success:
                        await response.aread()
                        delay = calls.delay_after(retries, failures, response)
                        if delay is None:
                            raise error_for(response)
                        failures += 1
                        await asyncio.sleep(delay)
                        continue
                    async for sse in source.aiter_sse():
                        event = state.read(sse)
                        if event is not None:
                            failures = 0
                            yield event
                            if state.done:
                                return
            except httpx.TransportError as exc:
                delay = retries.delay(failures, None)
                if delay is None:
                    raise transport_error(self.config.url, exc) from exc
                failures += 1
                await asyncio.sleep(delay)
            else:
                if not state.done:  # the server closed the stream: reopen it
                    delay = retries.delay(failures, None)
                    if delay is None:
                        raise TransportError(f"{self.config.url}: the event stream ended")
                    failures += 1
                    await asyncio.sleep(delay)

    async def queues(self) -> Queues:
        """Every queue that has jobs or settings."""
        return await self.send(calls.queues())

    async def set_queue(
        self,
        name: str,
        *,
        paused: bool | None = UNSET,
        concurrency_limit: int | None = UNSET,
        rate_limit: float | None = UNSET,
        max_queued: int | None = UNSET,
    ) -> QueueSettings:
        """Change a queue's settings: those given change, None removes a limit."""
        return await self.send(
            calls.set_queue(
                name,
                paused=paused,
                concurrency_limit=concurrency_limit,
                rate_limit=rate_limit,
                max_queued=max_queued,
            )
        )

    async def keys(self) -> ApiKeys:
        """Every API key, revoked and expired ones too (never their secrets)."""
        return await self.send(calls.keys())

    async def create_key(self, name: str, scopes: Iterable[str], **limits: Any) -> CreatedKey:
        """Create an API key; its `secret` is shown this once. `limits`: queues, tasks,
        rate_limit, expires_in or expires_at."""
        return await self.send(calls.create_key(name, scopes, **limits))

    async def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke an API key."""
        return await self.send(calls.revoke_key(key_id))

    async def rotate_key_webhook_secret(self, key_id: str) -> JSONObject:
        """A new webhook secret for an API key: `webhook_secret` (shown once) and
        `previous_secret_until`, when the old one stops signing."""
        return await self.send(calls.rotate_key_webhook_secret(key_id))
