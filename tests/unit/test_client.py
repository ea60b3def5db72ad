"""jqs.client's own logic against httpx.MockTransport: retries, idempotency, problem
mapping, paging, waiting and resuming event streams. The real server: tests/acceptance."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from jqs.client import (
    APIError,
    AsyncClient,
    Client,
    Conflict,
    EventType,
    Forbidden,
    JobStatus,
    NotFound,
    RateLimited,
    Retries,
    ServerError,
    TransportError,
    Unauthorized,
    Unavailable,
    ValidationError,
    WaitTimeout,
)

FAST = Retries(attempts=3, backoff=0.001, max_wait=5)
Handler = Callable[[httpx.Request], httpx.Response]


def job(job_id: int = 1, status: str = "queued", **extra: Any) -> dict[str, Any]:
    at = "2026-01-01T00:00:00Z"
    return {
        "id": job_id,
        "payload": {"task": "t"},
        "status": status,
        "result": None,
        "created_at": at,
        "updated_at": at,
        "task": "t",
        "queue": "default",
        "priority": 0,
        "run_at": at,
        "attempts": 0,
        "max_attempts": 3,
        "started_at": None,
        "finished_at": None,
        "timeout": None,
        "cancel_requested": False,
        "created_by": None,
        "errors": [],
        "progress": None,
        "waiting_for_worker": False,
        **extra,
    }


def problem(status: int, detail: str, **extra: Any) -> httpx.Response:
    return httpx.Response(
        status,
        json={"type": "about:blank", "title": "T", "status": status, "detail": detail, **extra},
        headers={"Content-Type": "application/problem+json", **extra.pop("headers", {})},
    )


def client(handler: Handler, retries: Retries = FAST) -> Client:
    return Client("http://jqs.test", "k", retries=retries, transport=httpx.MockTransport(handler))


def test_a_submit_retried_after_503_and_429_sends_one_idempotency_key() -> None:
    seen: list[httpx.Request] = []
    answers = [
        problem(503, "down", headers={"Retry-After": "0"}),
        problem(429, "full", headers={"Retry-After": "0"}),
        httpx.Response(201, json=job(7)),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    with client(handler) as jqs:
        made = jqs.submit({"task": "t"}, queue="q", priority=2, delay=1.5)
    assert made.id == 7
    assert made.status is JobStatus.QUEUED
    keys = {request.headers["Idempotency-Key"] for request in seen}
    assert len(seen) == 3
    assert len(keys) == 1
    assert seen[0].url.params == httpx.QueryParams({"queue": "q", "priority": "2", "delay": "1.5"})
    assert json.loads(seen[0].content) == {"task": "t"}
    assert seen[0].headers["Authorization"] == "Bearer k"


def test_a_submit_whose_answer_was_lost_is_sent_again_with_the_same_key() -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        if len(keys) == 1:
            raise httpx.ReadError("connection reset", request=request)
        return httpx.Response(200, json=job(3), headers={"Idempotent-Replayed": "true"})

    with client(handler) as jqs:
        assert jqs.submit({"task": "t"}, idempotency_key="order-17").id == 3
    assert keys == ["order-17", "order-17"]


def test_a_batch_is_not_sent_again_once_it_may_have_arrived() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ReadError("connection reset", request=request)

    with client(handler) as jqs, pytest.raises(TransportError):
        jqs.submit_many([{"task": "t"}])
    assert len(calls) == 1


def test_a_connection_that_never_opened_is_tried_again_then_reported() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused", request=request)

    with client(handler) as jqs, pytest.raises(TransportError, match="cannot connect"):
        jqs.submit_many([{"task": "t"}])
    assert len(calls) == 1 + FAST.attempts


def test_retries_are_bounded_and_a_long_retry_after_is_not_waited_out() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return problem(503, "down", headers={"Retry-After": "3600"})

    with client(handler) as jqs, pytest.raises(Unavailable) as raised:
        jqs.get(1)
    assert len(calls) == 1
    assert raised.value.retry_after == 3600

    calls.clear()
    with (
        client(
            lambda r: calls.append(1) or problem(429, "slow", headers={"Retry-After": "0"})
        ) as jqs,
        pytest.raises(RateLimited),
    ):
        jqs.get(1)
    assert len(calls) == 1 + FAST.attempts


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ValidationError),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (413, ValidationError),
        (422, ValidationError),
        (500, ServerError),
        (418, APIError),
    ],
)
def test_each_problem_is_raised_as_its_exception(status: int, kind: type[APIError]) -> None:
    extra = {"missing_scope": "jobs:manage"} if status == 403 else {}
    extra |= {"errors": [{"loc": "query.queue", "msg": "bad"}]} if status == 422 else {}
    answer = problem(status, "what went wrong", **extra)
    with client(lambda r: answer) as jqs, pytest.raises(kind) as raised:
        jqs.cancel(5)
    error = raised.value
    assert type(error) is kind
    assert (error.status, error.detail) == (status, "what went wrong")
    assert "what went wrong" in str(error)
    if status == 403:
        assert isinstance(error, Forbidden)
        assert error.missing_scope == "jobs:manage"
    if status == 422:
        assert isinstance(error, ValidationError)
        assert error.errors == [{"loc": "query.queue", "msg": "bad"}]


def test_an_answer_that_is_no_problem_document_still_raises_with_its_text() -> None:
    answer = httpx.Response(502, text="Bad gateway from the proxy")
    with client(lambda r: answer) as jqs, pytest.raises(ServerError, match="Bad gateway"):
        jqs.get(1)


def test_list_pages_below_the_last_id_until_an_empty_page() -> None:
    asked: list[httpx.QueryParams] = []
    pages = {None: [job(9), job(8)], "8": [job(5)], "5": []}

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params)
        return httpx.Response(200, json=pages[request.url.params.get("before_id")])

    with client(handler) as jqs:
        got = [[j.id for j in page] for page in jqs.list(status="failed", task="t", page_size=2)]
    assert got == [[9, 8], [5]]
    assert [p.get("before_id") for p in asked] == [None, "8", "5"]
    assert all(p["status"] == "failed" and p["task"] == "t" and p["limit"] == "2" for p in asked)


def test_wait_long_polls_and_returns_the_finished_job() -> None:
    waits: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        waits.append(request.url.params.get("wait"))
        done = len(waits) >= 3
        return httpx.Response(200, json=job(4, "completed" if done else "processing"))

    with client(handler) as jqs:
        finished = jqs.wait(4, timeout=5, poll=0.01)
    assert finished.status is JobStatus.COMPLETED
    assert waits[0] is None  # the first look is a plain GET
    assert all(w is not None and 0 < float(w) <= 5 for w in waits[1:])


def test_wait_gives_up_with_the_job_as_it_stands() -> None:
    answer = httpx.Response(200, json=job(4, "processing"))
    with client(lambda r: answer) as jqs, pytest.raises(WaitTimeout) as raised:
        jqs.wait(4, timeout=0.2, poll=0.05)
    assert raised.value.job.status is JobStatus.PROCESSING


def test_submit_with_wait_falls_back_on_a_server_without_it() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST" and "wait" in request.url.params:
            return problem(422, "query.wait: unknown query parameter (POST /jobs: it takes ...)")
        if request.method == "POST":
            return httpx.Response(201, json=job(2))
        return httpx.Response(200, json=job(2, "completed", result={"ok": True}))

    with client(handler) as jqs:
        done = jqs.submit({"task": "t"}, wait=5)
    assert done.result == {"ok": True}
    posts = [r for r in seen if r.method == "POST"]
    assert posts[0].headers["Idempotency-Key"] == posts[1].headers["Idempotency-Key"]


def sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(
        f"id: {cursor}\nevent: {body['type']}\ndata: {json.dumps(body)}\n\n".encode()
        for cursor, body in events
    )


def event(event_id: int, kind: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": kind,
        "job_id": 1,
        "queue": "default",
        "task": "t",
        "at": "2026-01-01T00:00:00Z",
        "data": None,
    }


class _Broken(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A stream that sends `body`, then breaks as a dropped connection does."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        yield self.body
        raise httpx.ReadError("connection dropped")

    async def __aiter__(self) -> Any:
        yield self.body
        raise httpx.ReadError("connection dropped")


def _stream_handler(resumed: list[str | None]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        resumed.append(request.headers.get("Last-Event-ID"))
        assert request.headers["Accept"] == "text/event-stream"
        headers = {"Content-Type": "text/event-stream"}
        if len(resumed) == 1:
            first = sse(("1", event(1, "job.enqueued")), ("2", event(2, "job.started")))
            return httpx.Response(200, stream=_Broken(first), headers=headers)
        body = sse(("3", event(3, "job.progress")), ("4", event(4, "job.completed")))
        return httpx.Response(200, content=body, headers=headers)

    return handler


def test_a_job_stream_resumes_after_a_dropped_connection_and_ends_with_the_job() -> None:
    resumed: list[str | None] = []
    with client(_stream_handler(resumed)) as jqs:
        events = list(jqs.events(1))
    assert [e.type for e in events] == [
        EventType.ENQUEUED,
        EventType.STARTED,
        EventType.PROGRESS,
        EventType.COMPLETED,
    ]
    assert resumed == [None, "2"]
    assert events[-1].final
    assert events[1].cursor == "2"


async def test_the_async_client_resumes_the_same_way() -> None:
    resumed: list[str | None] = []
    handler = _stream_handler(resumed)
    transport = httpx.MockTransport(handler)
    async with AsyncClient("http://jqs.test", retries=FAST, transport=transport) as jqs:
        events = [e.id async for e in jqs.events(1)]
    assert events == [1, 2, 3, 4]
    assert resumed == [None, "2"]


async def test_the_async_client_retries_and_maps_problems_as_the_sync_one() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Idempotency-Key"])
        if len(seen) == 1:
            return problem(503, "down", headers={"Retry-After": "0"})
        return problem(
            403, "API key key_1 lacks the scope jobs:submit", missing_scope="jobs:submit"
        )

    transport = httpx.MockTransport(handler)
    async with AsyncClient("http://jqs.test", retries=FAST, transport=transport) as jqs:
        with pytest.raises(Forbidden) as raised:
            await jqs.submit({"task": "t"})
    assert raised.value.missing_scope == "jobs:submit"
    assert len(seen) == 2
    assert len(set(seen)) == 1


def test_the_two_clients_are_mirrors() -> None:
    import inspect

    def methods(cls: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(member).parameters)
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_") and name not in {"close", "aclose"}
        }

    assert methods(Client) == methods(AsyncClient)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JQS_URL", "http://from-env:9000/")
    monkeypatch.setenv("JQS_API_KEY", "env-key")
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200, json=[]))
    with Client(transport=transport) as jqs:
        assert jqs.queues() == []
    assert str(seen[0].url) == "http://from-env:9000/queues"
    assert seen[0].headers["Authorization"] == "Bearer env-key"
    with Client("http://given", "given-key", transport=transport) as jqs:
        jqs.queues()
    assert str(seen[1].url) == "http://given/queues"
    assert seen[1].headers["Authorization"] == "Bearer given-key"


def test_set_queue_sends_only_what_changes() -> None:
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(
            200,
            json={
                "name": "q",
                "paused": True,
                "concurrency_limit": None,
                "rate_limit": 2.0,
                "max_queued": None,
            },
        )

    with client(handler) as jqs:
        settings = jqs.set_queue("q", paused=True, concurrency_limit=None)
    assert bodies == [{"paused": True, "concurrency_limit": None}]
    assert settings.paused
    assert settings.rate_limit == 2.0


def test_the_async_list_pages_as_the_sync_one() -> None:
    pages = {None: [job(3)], "3": []}
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, json=pages[r.url.params.get("before_id")])
    )

    async def read() -> list[int]:
        async with AsyncClient("http://jqs.test", transport=transport) as jqs:
            return [j.id async for page in jqs.list() for j in page]

    assert asyncio.run(read()) == [3]


def test_submit_wait_shows_the_jobs_progress_as_it_reports_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from rich.console import Console

    from jqs.client import cli

    reports = [
        job(
            6,
            "processing",
            progress={"progress": 0.25, "message": "resized 1 of 4", "at": "2026-01-01T00:00:01Z"},
        ),
        job(
            6,
            "processing",
            progress={"progress": 0.75, "message": "resized 3 of 4", "at": "2026-01-01T00:00:02Z"},
        ),
        job(6, "completed", result={"resized": 4}),
    ]
    answers = iter(reports)
    screen = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=screen, force_terminal=True, width=100))
    with client(lambda r: httpx.Response(200, json=next(answers))) as jqs:
        done = cli._follow(jqs, jqs.get(6), timeout=30)
    assert done.result == {"resized": 4}
    drawn = screen.getvalue()
    assert "resized 1 of 4" in drawn
    assert "resized 3 of 4" in drawn
    assert "75%" in drawn


def test_idle_connections_are_dropped_before_the_server_would_close_them() -> None:
    """A request sent on a connection that the server closes as it arrives fails; one that
    cannot be sent again (a retry, a cancel) then reaches the caller as an error."""
    from jqs.client.config import LIMITS
    from jqs.settings import Settings

    server_keeps = Settings.model_fields["keep_alive_timeout"].default
    assert LIMITS.keepalive_expiry is not None
    assert LIMITS.keepalive_expiry <= server_keeps / 2
    for client in (Client("http://127.0.0.1:1"), AsyncClient("http://127.0.0.1:1")):
        pool = client._http._transport._pool  # type: ignore[union-attr]
        assert pool._keepalive_expiry == LIMITS.keepalive_expiry
