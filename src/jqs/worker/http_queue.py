"""HttpQueue: the worker pool's JobQueue over the HTTP worker protocol (/v1, docs/workers.md).

`jqs worker --url` runs the very WorkerPool that `jqs worker` runs (its executor, outcome
writer, progress writer and prefetch) with this in place of the database, so a worker host
needs an API key with the `worker` scope and nothing else. Each call of the pool is one
request, or a few when it holds more than a request may carry:

- claim: `POST /v1/workers/claim`, 100 jobs a request at most. After a claim came back
  short (the queues were drained), the next one waits on the server up to `long_poll`
  seconds for a job to arrive, so a new job starts as soon as it is submitted; otherwise
  it answers at once. `interrupt()` ends a waiting claim with nothing (the pool stops).
- check_leases: `POST /v1/workers/leases`, every held lease in one request.
- finish: `POST /v1/workers/outcomes`, every end the writer has in one request (see
  `outcome_item` for how each Final is told). The server decides each end as it decides an
  HTTP worker's; for this pool's ends that is the decision already made here.
- release: `POST /v1/workers/release`; progress: `POST /v1/jobs/{id}/progress`;
  worker_beat: `POST /v1/workers/{id}/heartbeat`; worker_gone: `POST /v1/workers/{id}/gone`.

Failures are the store's errors, so the pool's own retries and logs apply: a server that
cannot be reached or answers 5xx or 429 raises ServerUnavailable (a DatabaseUnavailable),
and the next request waits out the Retry-After it sent; any other refusal raises
ServerRefused with its status.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import orjson

from jqs import __version__
from jqs.client.config import LIMITS
from jqs.client.errors import error_for, retry_after, transport_error
from jqs.clock import Clock, SystemClock
from jqs.errors import ServerRefused, ServerUnavailable, StoreError
from jqs.logging import get_logger
from jqs.models import ClaimedJob, ClaimResult, HeldJob, Lease, LeaseCheck, Progress
from jqs.outcome import AttemptError, Cancelled, Completed, Failed, Retry
from jqs.port import ClaimParams, Finish, LeaseCheckParams, WorkerBeat

log = get_logger(__name__)
T = TypeVar("T")

# The protocol's own bounds (jqs.api.workers), which never shrink within /v1.
MAX_JOBS = 100
MAX_WAIT = 30.0
MAX_ITEMS = 1000  # outcomes, or leases, in one request
LEASE_MIN, LEASE_MAX = 1.0, 3600.0
RETRY_IN_MAX = 30 * 86_400.0
MAX_ERROR_TYPE, MAX_ERROR_MESSAGE, MAX_TRACEBACK = 200, 10_000, 100_000
# Outcomes are sent in requests of at most this many bytes (the server takes 16 MiB by
# default); a request it refuses as too large is split.
OUTCOMES_BYTES = 4 * 1024 * 1024
# A Retry-After longer than this is not waited out in full (a proxy's, say).
MAX_RETRY_AFTER = 60.0
USER_AGENT = f"jqs-worker/{__version__}"


@dataclass(frozen=True, slots=True)
class ServerLink:
    """Where the JQS server is, the key to present, and how long to wait for answers."""

    url: str
    api_key: str | None = None  # None: the server must be one that needs no key
    timeout: float = 10.0  # per request, beyond what a claim waits on purpose
    long_poll: float = 5.0  # what a claim waits on the server once the queues were drained


def lease_seconds(seconds: float) -> float:
    """A lease length the protocol takes (a shorter one is lengthened: no less safe)."""
    return min(max(seconds, LEASE_MIN), LEASE_MAX)


def _text(value: str, limit: int) -> str:
    # The server refuses NUL (PostgreSQL cannot store it) and over-long fields; an end
    # refused for that would be lost, so it is trimmed here instead.
    return value.replace("\x00", "\ufffd")[:limit]


def _error(error: AttemptError) -> dict[str, Any]:
    """How an attempt's error is told: type, message and the traceback kept with it."""
    told: dict[str, Any] = {
        "type": _text(error.kind, MAX_ERROR_TYPE) or "Error",
        "message": _text(error.message, MAX_ERROR_MESSAGE),
    }
    kept = orjson.loads(memoryview(error.json))
    trace = kept.get("traceback") if isinstance(kept, dict) else None
    if isinstance(trace, str) and trace:
        told["traceback"] = _text(trace, MAX_TRACEBACK)
    return told


def outcome_item(finish: Finish) -> dict[str, Any]:
    """One end as `POST /v1/workers/outcomes` takes it.

    Completed: `complete`, its result sent as the bytes the handler's value became. Retry:
    `fail` with `retry_in` (the server retries while attempts remain, as decided here).
    Failed: `fail`, `final`. Cancelled: `fail`, `final`; the job was asked to cancel, so the
    server ends it `cancelled` (with the result it writes for every cancelled job).
    """
    lease, outcome = finish
    item: dict[str, Any] = {"job_id": lease.job_id, "lease_token": str(lease.token)}
    if isinstance(outcome, Completed):
        item["outcome"] = "complete"
        # Fragment takes bytes itself, not a subclass: a copy, never a parse.
        item["result"] = orjson.Fragment(bytes(outcome.result))
    elif isinstance(outcome, Retry):
        item["outcome"] = "fail"
        item["error"] = _error(outcome.error)
        item["retry_in"] = min(max(outcome.delay, 0.0), RETRY_IN_MAX)
    elif isinstance(outcome, Failed):
        item["outcome"] = "fail"
        item["error"] = _error(outcome.error)
        item["final"] = True
    else:
        assert isinstance(outcome, Cancelled)
        item["outcome"] = "fail"
        item["error"] = {"type": "Cancelled", "message": "the job was cancelled"}
        item["final"] = True
    return item


def _refused_item(item: dict[str, Any], detail: str) -> dict[str, Any]:
    """In place of an end the server refused as it stands (a result nested too deep, too
    large): a failed attempt that says so, retried like any other."""
    return {
        "job_id": item["job_id"],
        "lease_token": item["lease_token"],
        "outcome": "fail",
        "error": {"type": "OutcomeRefused", "message": _text(detail, MAX_ERROR_MESSAGE)},
    }


def _lease_json(lease: Lease) -> dict[str, Any]:
    return {"job_id": lease.job_id, "lease_token": str(lease.token)}


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _at(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _claimed(item: dict[str, Any]) -> ClaimedJob:
    job_id: int = item["id"]
    return ClaimedJob(
        id=job_id,
        payload=item["payload"],
        task=item["task"],
        queue=item["queue"],
        attempt=item["attempt"],
        max_attempts=item["max_attempts"],
        timeout=item["timeout"],
        lease=Lease(job_id, uuid.UUID(item["lease_token"])),
        waited=float(item.get("waited") or 0.0),
        trace_context=item.get("traceparent"),
        lease_expires_at=_at(item.get("lease_expires_at")),
    )


class HttpQueue:
    """A JobQueue whose store is a JQS server, reached over the HTTP worker protocol."""

    def __init__(
        self,
        link: ServerLink,
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        host: str = "",
    ) -> None:
        self.url = link.url.rstrip("/")
        self._link = link
        self._clock = clock or SystemClock()
        self._host = host
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=_headers(link.api_key),
            timeout=link.timeout,
            limits=LIMITS,
            transport=transport,
        )
        self._closing = asyncio.Event()
        self._drained = False  # the last claim came back short: the next one waits
        self._quiet_until = float("-inf")  # a Retry-After's end (monotonic)
        self._running = 0  # jobs the pool held when it last said so (sent with claims)

    def interrupt(self) -> None:
        """The pool is stopping: a waiting claim ends now with nothing, and so does any
        later one. The other calls go on (the pool still writes ends and hands jobs back)."""
        self._closing.set()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    # The JobQueue protocol

    async def claim(self, params: ClaimParams) -> ClaimResult:
        """Up to `params.limit` jobs, in requests of 100 at most.

        Once the queues were drained, the next claim waits on the server: the pool is told
        to make it at once (`ask_again`), unless this one was a wait that the server cut
        short with nothing (it is stopping): then the pool's poll paces the next."""
        wait = min(self._link.long_poll, MAX_WAIT) if self._drained else 0.0
        began = self._clock.monotonic()
        jobs: list[ClaimedJob] = []
        left = params.limit
        while left > 0 and not self._closing.is_set():
            ask = min(left, MAX_JOBS)
            try:
                got = await self._claim_some(params, ask, wait)
            except StoreError:
                if jobs:  # keep what came: those are ours to run (or hand back)
                    break
                raise
            jobs.extend(got)
            left -= len(got)
            if len(got) < ask:
                break
            wait = 0.0  # more may be waiting: ask at once
        cut_short = wait > 0 and not jobs and self._clock.monotonic() - began < wait / 2
        self._drained = left > 0
        return ClaimResult(jobs, ask_again=self._drained and not cut_short)

    async def check_leases(self, params: LeaseCheckParams) -> LeaseCheck:
        """Every lease in one request (a thousand at most each)."""
        lost: set[int] = set()
        cancel: set[int] = set()
        expires: dict[int, datetime] = {}
        for chunk in _chunks(params.leases, MAX_ITEMS):
            body: dict[str, Any] = {
                "leases": [_lease_json(lease) for lease in chunk],
                "extend": params.extend_by is not None,
            }
            if params.extend_by is not None:
                body["lease_seconds"] = lease_seconds(params.extend_by)
            _, answer = await self._send("POST", "/v1/workers/leases", body)
            lost.update(answer["lost"])
            cancel.update(answer["cancel_requested"])
            for job_id, at in answer["lease_expires_at"].items():
                when = _at(at)
                if when is not None:
                    expires[int(job_id)] = when
        return LeaseCheck(frozenset(lost), frozenset(cancel), expires)

    async def held(self, leases: Sequence[Lease]) -> list[HeldJob]:
        """Not served: the server reads held jobs to decide an HTTP worker's ends (Ends);
        the pool decides its own, and never asks."""
        raise NotImplementedError("a worker over HTTP does not read held jobs")

    async def finish(self, finishes: Sequence[Finish]) -> list[bool]:
        """Every end in one request, unless they are too many or too large for one."""
        items = [orjson.dumps(outcome_item(finish)) for finish in finishes]
        written: list[bool] = []
        for batch in self._outcome_batches(items):
            written.extend(await self._send_outcomes(batch))
        return written

    async def release(self, leases: Sequence[Lease]) -> int:
        """Hand jobs back to the queue, the attempt not counted."""
        released = 0
        for chunk in _chunks(leases, MAX_ITEMS):
            body = {"leases": [_lease_json(lease) for lease in chunk]}
            _, answer = await self._send("POST", "/v1/workers/release", body)
            released += int(answer["released"])
        return released

    async def progress(self, lease: Lease, report: Progress) -> bool:
        """Whether the lease held (409: it did not)."""
        body: dict[str, Any] = {"lease_token": str(lease.token), "progress": report.progress}
        if report.message is not None:
            body["message"] = report.message
        if report.data is not None:
            body["data"] = report.data
        status, _ = await self._send(
            "POST", f"/v1/jobs/{lease.job_id}/progress", body, conflict_ok=True
        )
        return status != 409

    async def worker_beat(self, beat: WorkerBeat) -> None:
        """The worker is alive (also sent once at start-up, which checks the key)."""
        self._running = beat.running
        body = {
            "host": _text(beat.host or self._host, 255),
            "version": _text(beat.version, 100),
            "queues": list(beat.queues),
            "running": beat.running,
            "concurrency": beat.concurrency,
        }
        await self._send("POST", f"/v1/workers/{_segment(beat.id)}/heartbeat", body)

    async def worker_gone(self, worker_id: str) -> None:
        """The worker leaves the server's list of live workers now."""
        await self._send("POST", f"/v1/workers/{_segment(worker_id)}/gone", None)

    # Requests

    async def _claim_some(self, params: ClaimParams, count: int, wait: float) -> list[ClaimedJob]:
        body: dict[str, Any] = {
            "worker": {
                "id": params.worker_id,
                "host": _text(self._host, 255),
                "version": __version__,
                "running": self._running,
            },
            "queues": list(params.queues),
            "max_jobs": count,
            "wait": wait,
            "lease_seconds": lease_seconds(params.lease_seconds),
        }
        if params.tasks is not None:
            body["tasks"] = list(params.tasks)
        request = self._send("POST", "/v1/workers/claim", body, waits=wait)
        if wait > 0:
            answered = await self._unless_interrupted(request)
            if answered is None:
                return []
            _, answer = answered
        else:
            _, answer = await request
        return [_claimed(item) for item in answer]

    async def _unless_interrupted(self, request: Awaitable[T]) -> T | None:
        """The request's answer, or None once `interrupt()` is called first. The request is
        then abandoned: the server sees the connection close, and hands back any job it had
        just claimed for it."""
        if self._closing.is_set():
            if asyncio.iscoroutine(request):
                request.close()
            return None
        sent = asyncio.ensure_future(request)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait((sent, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not sent.done():
                sent.cancel()
                await asyncio.gather(sent, return_exceptions=True)
        return sent.result() if not sent.cancelled() else None

    def _outcome_batches(self, items: list[bytes]) -> Iterator[list[bytes]]:
        batch: list[bytes] = []
        size = 0
        for item in items:
            if batch and (len(batch) == MAX_ITEMS or size + len(item) > OUTCOMES_BYTES):
                yield batch
                batch, size = [], 0
            batch.append(item)
            size += len(item) + 1
        if batch:
            yield batch

    async def _send_outcomes(self, items: list[bytes]) -> list[bool]:
        """Per item, whether it was written; a batch refused as it stands (413, 422) is
        split until the item at fault is found, which goes as a failed attempt instead."""
        body = b'{"outcomes":[' + b",".join(items) + b"]}"
        try:
            _, answer = await self._send("POST", "/v1/workers/outcomes", body)
        except ServerRefused as exc:
            if exc.status not in (413, 422):
                raise
            if len(items) > 1:
                half = len(items) // 2
                return await self._send_outcomes(items[:half]) + await self._send_outcomes(
                    items[half:]
                )
            item = orjson.loads(items[0])
            if item.get("error", {}).get("type") == "OutcomeRefused":
                raise
            log.error("job_outcome_refused", job_id=item["job_id"], error=str(exc))
            return await self._send_outcomes([orjson.dumps(_refused_item(item, str(exc)))])
        return [bool(result["ok"]) for result in answer["results"]]

    async def _send(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        waits: float = 0.0,
        conflict_ok: bool = False,
    ) -> tuple[int, Any]:
        """The answer's status and JSON (None when it has none). Raises ServerUnavailable
        when the server cannot be reached or answers 5xx or 429 (the next request waits
        out its Retry-After), ServerRefused for any other refusal (409 too, unless
        `conflict_ok`). `waits`: seconds the server may wait on purpose before answering."""
        quiet = self._quiet_until - self._clock.monotonic()
        if quiet > 0:
            await self._clock.sleep(quiet)
        content = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
        try:
            response = await self._http.request(
                method, path, content=content, timeout=self._link.timeout + waits
            )
        except httpx.TransportError as exc:
            raise ServerUnavailable(str(transport_error(self.url, exc))) from exc
        status = response.status_code
        if status < 300 or (status == 409 and conflict_ok):
            try:
                return status, orjson.loads(response.content) if response.content else None
            except orjson.JSONDecodeError:  # not JQS answering (a proxy's page, say)
                raise ServerUnavailable(f"{self.url}{path}: the answer is not JSON") from None
        error = error_for(response)
        message = f"{self.url}{path}: {error.detail} ({status})"
        if status == 429 or status >= 500:
            wait = retry_after(response)
            if wait is not None:
                self._quiet_until = self._clock.monotonic() + min(wait, MAX_RETRY_AFTER)
            raise ServerUnavailable(message)
        raise ServerRefused(message, status)


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _segment(value: str) -> str:
    return quote(value, safe=":")
