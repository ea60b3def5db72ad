"""The worker pool's JobQueue over HTTP: how each end is told, and how requests are made
(claims split and long-polled, refusals, Retry-After), against a stand-in transport. The
real server's side is in tests/integration/test_http_worker.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import orjson
import pytest

from jqs.api.workers import OutcomesIn
from jqs.errors import DatabaseUnavailable, ServerRefused, ServerUnavailable
from jqs.jsonutil import RawJSON
from jqs.models import Lease, Progress
from jqs.outcome import Cancelled, Completed, Failed, Final, Retry, attempt_error, cancelled_result
from jqs.port import ClaimParams, Finish, LeaseCheckParams
from jqs.testing import ManualClock
from jqs.worker.http_queue import HttpQueue, ServerLink, outcome_item

LEASE = Lease(7, uuid.UUID("2f0c0000-0000-4000-8000-000000000007"))
TOKEN = str(LEASE.token)


def _wire(finish: Finish) -> dict[str, Any]:
    """The item as the server reads it off the wire."""
    decoded: dict[str, Any] = orjson.loads(orjson.dumps(outcome_item(finish)))
    return decoded


def test_a_completed_attempt_sends_its_result_as_it_was_encoded() -> None:
    raw = RawJSON(b'{"z":1,"a":[1.50,"x"]}')
    sent = orjson.dumps(outcome_item(Finish(LEASE, Completed(raw))))
    assert bytes(raw) in sent, "the handler's bytes, not a re-encoding"
    assert _wire(Finish(LEASE, Completed(raw))) == {
        "job_id": 7,
        "lease_token": TOKEN,
        "outcome": "complete",
        "result": {"z": 1, "a": [1.5, "x"]},
    }


def test_a_retry_is_a_failure_with_its_delay_and_traceback() -> None:
    try:
        raise ValueError("bad input")
    except ValueError as exc:
        error = attempt_error("bad input", kind="ValueError", attempt=1, exc=exc)
    item = _wire(Finish(LEASE, Retry(error, 12.5)))
    assert item["outcome"] == "fail"
    assert item["retry_in"] == 12.5
    assert "final" not in item
    assert (item["error"]["type"], item["error"]["message"]) == ("ValueError", "bad input")
    assert "ValueError: bad input" in item["error"]["traceback"]


def test_failed_and_cancelled_attempts_are_final_failures() -> None:
    failed = _wire(Finish(LEASE, Failed(attempt_error("no", kind="FailNow", attempt=3))))
    assert (failed["outcome"], failed["final"], failed["error"]["type"]) == (
        "fail",
        True,
        "FailNow",
    )
    assert "traceback" not in failed["error"]
    cancelled = _wire(Finish(LEASE, Cancelled(cancelled_result(2))))
    assert (cancelled["outcome"], cancelled["final"]) == ("fail", True)
    assert cancelled["error"]["type"] == "Cancelled"


def test_what_the_server_would_refuse_is_trimmed_and_every_item_is_valid() -> None:
    error = attempt_error("m\x00" * 20_000, kind="K" * 500, attempt=1)
    long = _wire(Finish(LEASE, Retry(error, 10**9)))
    assert len(long["error"]["message"]) == 10_000
    assert "\x00" not in long["error"]["message"]
    assert len(long["error"]["type"]) == 200
    assert long["retry_in"] == 30 * 86_400
    ends: list[Final] = [
        Completed(RawJSON(b"null")),
        Retry(error, 1.0),
        Failed(error),
        Cancelled(cancelled_result(1)),
    ]
    body = {"outcomes": [_wire(Finish(LEASE, end)) for end in ends]}
    OutcomesIn.model_validate(body)  # the server's own model of the request


Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


def _queue(handler: Handler, **link: Any) -> HttpQueue:
    return HttpQueue(
        ServerLink("http://jqs.test", "k", **link), transport=httpx.MockTransport(handler)
    )


def _job(job_id: int) -> dict[str, Any]:
    return {
        "id": job_id,
        "task": "t",
        "queue": "default",
        "payload": {"task": "t"},
        "attempt": 1,
        "max_attempts": 3,
        "timeout": None,
        "lease_token": str(uuid.uuid4()),
        "lease_expires_at": "2030-01-01T00:00:30.5+00:00",
        "waited": 0.25,
        "traceparent": None,
    }


def _params(limit: int) -> ClaimParams:
    return ClaimParams(queues=["default"], limit=limit, lease_seconds=30.0, worker_id="w")


async def test_a_claim_is_split_in_hundreds_and_waits_once_the_queue_ran_dry() -> None:
    asked: list[dict[str, Any]] = []
    available = iter(range(1, 1000))

    async def serve(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        asked.append(body)
        count = min(body["max_jobs"], 150 - sum(a["max_jobs"] for a in asked[:-1]))
        return httpx.Response(200, json=[_job(next(available)) for _ in range(max(count, 0))])

    queue = _queue(serve, long_poll=4.0)
    claimed = await queue.claim(_params(250))
    assert len(claimed.jobs) == 150
    assert [(a["max_jobs"], a["wait"]) for a in asked] == [(100, 0.0), (100, 0.0)]
    assert asked[0]["worker"]["id"] == "w"
    job = claimed.jobs[0]
    assert (job.id, job.lease.job_id, job.lease_expires_at is not None) == (1, 1, True)
    assert (job.waited, job.trace_context) == (0.25, None)
    assert claimed.ask_again, "it came back short: the pool asks again at once, and waits"
    await queue.claim(_params(5))
    assert asked[-1]["wait"] == 4.0, "the last claim came back short: this one waits"
    await queue.aclose()


async def test_the_pool_asks_again_at_once_unless_the_server_cut_a_wait_short() -> None:
    clock = ManualClock()
    answers: list[list[dict[str, Any]]] = [[_job(1)], [_job(2)], [], []]
    took = [0.0, 0.0, 4.0, 0.0]  # seconds each answer keeps the claim waiting

    async def serve(request: httpx.Request) -> httpx.Response:
        await clock.advance(took.pop(0))
        return httpx.Response(200, json=answers.pop(0))

    queue = HttpQueue(
        ServerLink("http://jqs.test", "k", long_poll=4.0),
        clock=clock,
        transport=httpx.MockTransport(serve),
    )
    first = await queue.claim(_params(5))  # at once: short, so the next one will wait
    waited_for_one = await queue.claim(_params(5))
    waited_out = await queue.claim(_params(5))  # nothing came within the wait
    cut_short = await queue.claim(_params(5))  # nothing, at once: the server is stopping
    assert [len(c.jobs) for c in (first, waited_for_one, waited_out, cut_short)] == [1, 1, 0, 0]
    assert [c.ask_again for c in (first, waited_for_one, waited_out, cut_short)] == [
        True,
        True,
        True,
        False,
    ]
    await queue.aclose()


async def test_a_claimed_jobs_trace_context_reaches_the_attempt() -> None:
    traced = {**_job(1), "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}

    async def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[traced])

    queue = _queue(serve)
    [job] = (await queue.claim(_params(1))).jobs
    assert job.trace_context == traced["traceparent"]
    await queue.aclose()


async def test_interrupt_ends_a_waiting_claim_at_once() -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)
        return httpx.Response(200, json=[])

    queue = _queue(never)
    queue._drained = True  # the claim waits on the server
    waiting = asyncio.create_task(queue.claim(_params(1)))
    await asyncio.sleep(0.05)
    queue.interrupt()
    assert (await asyncio.wait_for(waiting, 2)).jobs == []
    assert (await queue.claim(_params(1))).jobs == [], "and later ones do not ask"
    await queue.aclose()


async def test_lost_leases_and_refused_ends_come_back_as_the_store_says_them() -> None:
    async def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/workers/leases":
            body = orjson.loads(request.content)
            assert (body["extend"], body["lease_seconds"]) == (True, 1.0)
            return httpx.Response(
                200,
                json={
                    "lost": [7],
                    "cancel_requested": [8],
                    "lease_expires_at": {"8": "2030-01-01T00:00:00+00:00"},
                },
            )
        if request.url.path == "/v1/workers/outcomes":
            return httpx.Response(
                200,
                json={
                    "results": [
                        {"job_id": 7, "ok": True, "status": "completed"},
                        {"job_id": 8, "ok": False, "problem": {"status": 409, "detail": "x"}},
                    ]
                },
            )
        assert request.url.path == "/v1/jobs/7/progress"
        return httpx.Response(409, json={"status": 409, "detail": "the lease does not hold"})

    queue = _queue(serve)
    other = Lease(8, uuid.uuid4())
    check = await queue.check_leases(LeaseCheckParams([LEASE, other], extend_by=0.3))
    assert (set(check.lost), set(check.cancel_requested)) == ({7}, {8})
    assert list(check.expires_at) == [8]
    done = Completed(RawJSON(b"1"))
    assert await queue.finish([Finish(LEASE, done), Finish(other, done)]) == [True, False]
    assert await queue.progress(LEASE, Progress(0.5)) is False
    await queue.aclose()


async def test_a_busy_server_is_unavailable_and_its_retry_after_is_waited_out() -> None:
    answers = [
        httpx.Response(
            503, json={"detail": "the database is unavailable"}, headers={"Retry-After": "0.3"}
        ),
        httpx.Response(200, json=[]),
        httpx.Response(401, json={"detail": "this API key is unknown, revoked or expired"}),
    ]

    async def serve(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    queue = _queue(serve)
    with pytest.raises(ServerUnavailable) as busy:
        await queue.claim(_params(1))
    assert isinstance(busy.value, DatabaseUnavailable), "the pool's retries apply"
    began = time.monotonic()
    await queue.claim(_params(1))
    assert time.monotonic() - began >= 0.25
    with pytest.raises(ServerRefused) as refused:
        await queue.claim(_params(1))
    assert refused.value.status == 401
    assert "unknown, revoked or expired" in str(refused.value)
    await queue.aclose()


async def test_an_unreachable_server_is_unavailable() -> None:
    async def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    queue = _queue(down)
    with pytest.raises(ServerUnavailable, match="cannot connect"):
        await queue.release([LEASE])
    await queue.aclose()


async def test_an_end_refused_as_it_stands_is_found_and_sent_as_a_failure() -> None:
    sent: list[list[dict[str, Any]]] = []

    async def serve(request: httpx.Request) -> httpx.Response:
        outcomes = orjson.loads(request.content)["outcomes"]
        sent.append(outcomes)
        if any(item.get("result") == "too deep" for item in outcomes):
            return httpx.Response(422, json={"detail": "result: nested too deep"})
        return httpx.Response(
            200, json={"results": [{"job_id": i["job_id"], "ok": True} for i in outcomes]}
        )

    queue = _queue(serve)
    leases = [Lease(n, uuid.uuid4()) for n in (1, 2, 3)]
    ends = [Completed(RawJSON(raw)) for raw in (b"1", b'"too deep"', b"3")]
    written = await queue.finish(
        [Finish(lease, end) for lease, end in zip(leases, ends, strict=True)]
    )
    assert written == [True, True, True]
    failures = [item for batch in sent for item in batch if item["outcome"] == "fail"]
    assert [(i["job_id"], i["error"]["type"]) for i in failures] == [(2, "OutcomeRefused")]
    assert "nested too deep" in failures[0]["error"]["message"]
    await queue.aclose()
