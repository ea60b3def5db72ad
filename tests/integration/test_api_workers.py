"""The HTTP worker protocol (/v1) on a real PostgreSQL, through the app in-process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jqs.api.app import create_app
from jqs.api.state import ApiState
from jqs.auth.issue import KeySpec, issue_key
from jqs.auth.keyring import KeyRing
from jqs.auth.scopes import Scope
from jqs.port import QueuePatch
from jqs.remote import ClaimHub, Ends, RemoteWorkers
from jqs.store import PostgresStore
from jqs.worker.executor import RetryPolicy
from tests.integration.test_api import assert_problem

WORKER = {"id": "w-1", "host": "box", "version": "0.1"}


@pytest.fixture
async def remote(store: PostgresStore) -> AsyncIterator[RemoteWorkers]:
    hub = ClaimHub(store, poll_interval=0.2)
    await hub.start()
    yield RemoteWorkers(
        store, hub, Ends(store, policy=RetryPolicy(backoff_base=60.0)), lease_seconds=30.0
    )
    hub.close()
    await hub.stop()


@pytest.fixture
async def client(store: PostgresStore, remote: RemoteWorkers) -> AsyncIterator[httpx.AsyncClient]:
    state = ApiState(store=store, on_enqueue=remote.hub.notify, remote=remote)
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://jqs.test", timeout=30
    ) as client:
        yield client


async def submit(client: httpx.AsyncClient, payload: dict[str, Any], **params: Any) -> int:
    answer = await client.post("/jobs", json=payload, params=params)
    assert answer.status_code == 201, answer.text
    job_id: int = answer.json()["id"]
    return job_id


async def claim(client: httpx.AsyncClient, **body: Any) -> list[dict[str, Any]]:
    answer = await client.post(
        "/v1/workers/claim", json={"worker": WORKER, "queues": ["default"], **body}
    )
    assert answer.status_code == 200, answer.text
    jobs: list[dict[str, Any]] = answer.json()
    return jobs


async def job(client: httpx.AsyncClient, job_id: int) -> dict[str, Any]:
    found: dict[str, Any] = (await client.get(f"/jobs/{job_id}")).json()
    return found


async def test_a_claim_hands_out_runnable_jobs_with_their_leases(
    client: httpx.AsyncClient,
) -> None:
    first = await submit(client, {"task": "a", "n": 1}, max_attempts=4, timeout=9)
    second = await submit(client, {"task": "b"})
    jobs = await claim(client, max_jobs=10)
    assert [j["id"] for j in jobs] == [first, second]
    one = jobs[0]
    assert (one["task"], one["queue"], one["payload"]) == ("a", "default", {"task": "a", "n": 1})
    assert (one["attempt"], one["max_attempts"], one["timeout"]) == (1, 4, 9)
    uuid.UUID(one["lease_token"])
    assert one["lease_expires_at"]
    assert 0 <= one["waited"] < 60
    assert one["traceparent"] is None, "not traced: tracing is off"
    assert (await job(client, first))["status"] == "processing"
    assert await claim(client) == [], "nothing left, no wait: at once"


async def test_a_waiting_claim_answers_when_a_job_arrives(client: httpx.AsyncClient) -> None:
    began = time.monotonic()
    waiting = asyncio.create_task(claim(client, wait=20))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    job_id = await submit(client, {"task": "late"})
    jobs = await asyncio.wait_for(waiting, 15)
    assert [j["id"] for j in jobs] == [job_id]
    assert time.monotonic() - began < 15


async def test_a_waiting_claim_ends_empty_when_its_wait_ends_or_the_server_stops(
    client: httpx.AsyncClient, remote: RemoteWorkers
) -> None:
    began = time.monotonic()
    assert await claim(client, wait=0.5) == []
    assert time.monotonic() - began >= 0.5
    waiting = asyncio.create_task(claim(client, wait=30))
    await asyncio.sleep(0.3)
    remote.hub.close()
    assert await asyncio.wait_for(waiting, 5) == []


async def test_heartbeat_extends_the_lease_and_tells_of_cancellation(
    client: httpx.AsyncClient,
) -> None:
    job_id = await submit(client, {"task": "x"})
    [held] = await claim(client, lease_seconds=5)
    beat = await client.post(
        f"/v1/jobs/{job_id}/heartbeat", json={"lease_token": held["lease_token"]}
    )
    assert beat.status_code == 200, beat.text
    assert beat.json()["cancel_requested"] is False
    assert beat.json()["lease_expires_at"] > held["lease_expires_at"]
    assert (await client.post(f"/jobs/{job_id}/cancel")).status_code == 202
    asked = await client.post(
        f"/v1/jobs/{job_id}/heartbeat", json={"lease_token": held["lease_token"]}
    )
    assert asked.json()["cancel_requested"] is True
    done = await client.post(
        f"/v1/jobs/{job_id}/complete", json={"lease_token": held["lease_token"], "result": 1}
    )
    assert done.json()["status"] == "cancelled"
    assert (await job(client, job_id))["status"] == "cancelled"


async def test_complete_writes_the_result_once_and_refuses_a_wrong_token(
    client: httpx.AsyncClient,
) -> None:
    job_id = await submit(client, {"task": "x"})
    [held] = await claim(client)
    wrong = {"lease_token": str(uuid.uuid4()), "result": "no"}
    refused = await client.post(f"/v1/jobs/{job_id}/complete", json=wrong)
    assert_problem(refused, 409)
    assert (await job(client, job_id))["status"] == "processing", "untouched"
    done = await client.post(
        f"/v1/jobs/{job_id}/complete",
        json={"lease_token": held["lease_token"], "result": {"ok": True}},
    )
    assert done.status_code == 200, done.text
    assert done.json() == {"job_id": job_id, "status": "completed", "retry_in": None}
    finished = await job(client, job_id)
    assert (finished["status"], finished["result"]) == ("completed", {"ok": True})
    again = await client.post(
        f"/v1/jobs/{job_id}/complete", json={"lease_token": held["lease_token"]}
    )
    assert_problem(again, 409)
    beat = await client.post(
        f"/v1/jobs/{job_id}/heartbeat", json={"lease_token": held["lease_token"]}
    )
    assert_problem(beat, 409)
    progress = await client.post(
        f"/v1/jobs/{job_id}/progress", json={"lease_token": held["lease_token"], "progress": 1}
    )
    assert_problem(progress, 409)


async def test_fail_retries_while_attempts_remain_then_fails(client: httpx.AsyncClient) -> None:
    job_id = await submit(client, {"task": "x"}, max_attempts=2)
    [first] = await claim(client)
    error = {"type": "ValueError", "message": "bad", "traceback": "line 1"}
    retried = await client.post(
        f"/v1/jobs/{job_id}/fail",
        json={"lease_token": first["lease_token"], "error": error, "retry_in": 0},
    )
    assert retried.json() == {"job_id": job_id, "status": "queued", "retry_in": 0}
    [second] = await claim(client)
    assert second["attempt"] == 2
    failed = await client.post(
        f"/v1/jobs/{job_id}/fail", json={"lease_token": second["lease_token"], "error": error}
    )
    assert failed.json()["status"] == "failed"
    ended = await job(client, job_id)
    assert ended["status"] == "failed"
    assert ended["result"]["type"] == "ValueError"
    assert ended["result"]["traceback"] == "line 1"
    assert [e["attempt"] for e in ended["errors"]] == [1, 2]


async def test_fail_without_retry_in_waits_the_backoff_and_final_fails_at_once(
    client: httpx.AsyncClient,
) -> None:
    later = await submit(client, {"task": "x"}, max_attempts=5)
    now = await submit(client, {"task": "y"}, max_attempts=5)
    jobs = {j["id"]: j for j in await claim(client, max_jobs=2)}
    error = {"type": "E", "message": "m"}
    backoff = await client.post(
        f"/v1/jobs/{later}/fail", json={"lease_token": jobs[later]["lease_token"], "error": error}
    )
    assert backoff.json()["status"] == "queued"
    assert 30 <= backoff.json()["retry_in"] <= 60, "the server's backoff (base 60 s here)"
    final = await client.post(
        f"/v1/jobs/{now}/fail",
        json={"lease_token": jobs[now]["lease_token"], "error": error, "final": True},
    )
    assert final.json()["status"] == "failed"


async def test_outcomes_in_a_batch_are_answered_one_by_one(client: httpx.AsyncClient) -> None:
    ids = [await submit(client, {"task": "x", "i": i}) for i in range(3)]
    held = {j["id"]: j["lease_token"] for j in await claim(client, max_jobs=3)}
    outcomes = [
        {"job_id": ids[0], "outcome": "complete", "lease_token": held[ids[0]], "result": 0},
        {
            "job_id": ids[1],
            "outcome": "fail",
            "lease_token": held[ids[1]],
            "error": {"type": "E", "message": "m"},
            "final": True,
        },
        {"job_id": ids[2], "outcome": "complete", "lease_token": str(uuid.uuid4())},
    ]
    answer = await client.post("/v1/workers/outcomes", json={"outcomes": outcomes})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [(r["job_id"], r["ok"]) for r in results] == [
        (ids[0], True),
        (ids[1], True),
        (ids[2], False),
    ]
    assert [r.get("status") for r in results[:2]] == ["completed", "failed"]
    assert results[2]["problem"]["status"] == 409
    assert (await job(client, ids[2]))["status"] == "processing"
    fresh = await submit(client, {"task": "x"})
    [held_again] = await claim(client)
    once = {"job_id": fresh, "outcome": "complete", "lease_token": held_again["lease_token"]}
    twice = await client.post("/v1/workers/outcomes", json={"outcomes": [once, once]})
    assert [r["ok"] for r in twice.json()["results"]] == [True, False], "written once"
    unknown = {"job_id": fresh, "outcome": "done", "lease_token": held_again["lease_token"]}
    assert_problem(await client.post("/v1/workers/outcomes", json={"outcomes": [unknown]}), 422)


async def test_progress_is_recorded_on_the_job(client: httpx.AsyncClient) -> None:
    job_id = await submit(client, {"task": "x"})
    [held] = await claim(client)
    answer = await client.post(
        f"/v1/jobs/{job_id}/progress",
        json={"lease_token": held["lease_token"], "progress": 0.5, "message": "half"},
    )
    assert answer.status_code == 204, answer.text
    progress = (await job(client, job_id))["progress"]
    assert (progress["progress"], progress["message"]) == (0.5, "half")


async def test_claims_hold_to_tasks_and_queue_limits(
    client: httpx.AsyncClient, store: PostgresStore
) -> None:
    await submit(client, {"task": "a"})
    b = await submit(client, {"task": "b"})
    assert [j["id"] for j in await claim(client, tasks=["b"])] == [b]
    await store.queue_update(
        QueuePatch("slow", concurrency_limit=1, given=frozenset({"concurrency_limit"}))
    )
    for _ in range(3):
        await submit(client, {"task": "s"}, queue="slow")
    assert len(await claim(client, queues=["slow"], max_jobs=10)) == 1
    assert await claim(client, queues=["slow"], max_jobs=10) == []
    await store.queue_update(QueuePatch("paused", paused=True, given=frozenset({"paused"})))
    await submit(client, {"task": "p"}, queue="paused")
    assert await claim(client, queues=["paused"]) == []


async def test_claims_hold_to_a_queues_rate_limit(
    client: httpx.AsyncClient, store: PostgresStore
) -> None:
    """Two jobs a second at most: each batch claim takes one, an immediate next claim
    none, and a waiting claim gets the next token when it comes, half a second later."""
    await store.queue_update(QueuePatch("metered", rate_limit=2.0, given=frozenset({"rate_limit"})))
    for _ in range(4):
        await submit(client, {"task": "m"}, queue="metered")
    times: list[float] = []
    while len(times) < 4:
        jobs = await claim(client, queues=["metered"], max_jobs=10, wait=5)
        assert len(jobs) == 1, "one token, one job"
        times.append(time.monotonic())
        if len(times) == 1:
            right_after = await claim(client, queues=["metered"], max_jobs=10)
            if time.monotonic() - times[0] < 0.4:  # a stalled machine may let a token come
                assert right_after == []
            elif right_after:
                times.append(time.monotonic())
    assert times[-1] - times[0] >= 1.4, "four jobs at two a second: 1.5 s from first to last"


async def test_workers_are_listed_once_they_claim_or_beat(client: httpx.AsyncClient) -> None:
    await claim(client, worker={**WORKER, "running": 2}, queues=["default", "q2"])
    beat = await client.post(
        "/v1/workers/idle-1/heartbeat",
        json={"host": "h2", "version": "9", "queues": ["default"]},
    )
    assert beat.status_code == 204, beat.text
    listed = {w["id"]: w for w in (await client.get("/workers")).json()}
    assert set(listed) == {"w-1", "idle-1"}
    w = listed["w-1"]
    assert (w["host"], w["version"], w["queues"], w["running"]) == (
        "box",
        "0.1",
        ["default", "q2"],
        2,
    )
    assert w["last_seen_at"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"worker": WORKER, "queues": []},
        {"worker": WORKER, "queues": ["default"], "max_jobs": 101},
        {"worker": WORKER, "queues": ["default"], "wait": 31},
        {"worker": {"id": ""}, "queues": ["default"]},
        {"worker": WORKER, "queues": ["no spaces"]},
        {"worker": WORKER, "queues": ["default"], "max_jobs": "1"},
    ],
)
async def test_a_bad_claim_is_a_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert_problem(await client.post("/v1/workers/claim", json=body), 422)


def _leases(*jobs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"job_id": j["id"], "lease_token": j["lease_token"]} for j in jobs]


async def test_leases_are_kept_in_one_request_and_tell_of_loss_and_cancellation(
    client: httpx.AsyncClient,
) -> None:
    ids = [await submit(client, {"task": "x", "i": i}) for i in range(3)]
    held = await claim(client, max_jobs=3, lease_seconds=5)
    assert (await client.post(f"/jobs/{ids[1]}/cancel")).status_code == 202
    stale = {"job_id": ids[2], "lease_token": str(uuid.uuid4())}
    body = {"leases": [*_leases(*held[:2]), stale], "lease_seconds": 60}
    answer = await client.post("/v1/workers/leases", json=body)
    assert answer.status_code == 200, answer.text
    check = answer.json()
    assert (check["lost"], check["cancel_requested"]) == ([ids[2]], [ids[1]])
    assert set(check["lease_expires_at"]) == {str(ids[0]), str(ids[1])}
    assert check["lease_expires_at"][str(ids[0])] > held[0]["lease_expires_at"]
    look = await client.post("/v1/workers/leases", json={"leases": _leases(*held), "extend": False})
    assert look.json() == {"lost": [], "cancel_requested": [ids[1]], "lease_expires_at": {}}
    done = await client.post(
        f"/v1/jobs/{ids[0]}/complete", json={"lease_token": held[0]["lease_token"]}
    )
    assert done.status_code == 200
    after = await client.post("/v1/workers/leases", json={"leases": _leases(held[0])})
    assert after.json()["lost"] == [ids[0]], "an ended job's lease holds no more"


async def test_release_hands_jobs_back_uncounted_and_leaves_stale_leases_alone(
    client: httpx.AsyncClient,
) -> None:
    ids = [await submit(client, {"task": "x", "i": i}) for i in range(2)]
    held = await claim(client, max_jobs=2)
    stale = {"job_id": ids[1], "lease_token": str(uuid.uuid4())}
    answer = await client.post("/v1/workers/release", json={"leases": [*_leases(held[0]), stale]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"released": 1}
    back = await job(client, ids[0])
    assert (back["status"], back["attempts"]) == ("queued", 0)
    events = [e["type"] for e in (await client.get(f"/jobs/{ids[0]}/events")).json()]
    assert events[-1] == "job.released"
    assert (await job(client, ids[1]))["status"] == "processing"
    [again] = await claim(client)
    assert (again["id"], again["attempt"]) == (ids[0], 1), "claimed again, the attempt uncounted"


async def test_a_worker_that_says_it_is_gone_leaves_the_list(client: httpx.AsyncClient) -> None:
    await claim(client, worker={**WORKER, "id": "leaving:1"})
    assert "leaving:1" in {w["id"] for w in (await client.get("/workers")).json()}
    gone = await client.post("/v1/workers/leaving:1/gone")
    assert gone.status_code == 204, gone.text
    assert "leaving:1" not in {w["id"] for w in (await client.get("/workers")).json()}
    assert (await client.post("/v1/workers/never-seen/gone")).status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        {"leases": []},
        {"leases": [{"job_id": 1}]},
        {"leases": [{"job_id": 0, "lease_token": str(uuid.uuid4())}]},
        {"leases": [{"job_id": 1, "lease_token": "nope"}]},
        {"leases": [{"job_id": 1, "lease_token": str(uuid.uuid4())}], "lease_seconds": 0.5},
        {"leases": [{"job_id": 1, "lease_token": str(uuid.uuid4())}] * 1001},
    ],
)
async def test_bad_lease_batches_are_a_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert_problem(await client.post("/v1/workers/leases", json=body), 422)
    if "lease_seconds" not in body:
        assert_problem(await client.post("/v1/workers/release", json=body), 422)


ADMIN = "test-admin-key-0123456789abcdefghijkl"


@pytest.fixture
async def keyed(
    store: PostgresStore, remote: RemoteWorkers
) -> AsyncIterator[tuple[httpx.AsyncClient, KeyRing]]:
    """The app with API keys on: requests carry a key (the admin key by default)."""
    ring = KeyRing(store, admin_key=ADMIN)
    state = ApiState(store=store, on_enqueue=remote.hub.notify, remote=remote, keyring=ring)
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://jqs.test",
        timeout=30,
        headers={"Authorization": f"Bearer {ADMIN}"},
    ) as client:
        yield client, ring


async def _key(
    store: PostgresStore, ring: KeyRing, *scopes: Scope, **limits: Any
) -> dict[str, str]:
    issued = await issue_key(
        store, KeySpec(name="k", scopes=frozenset(scopes), **limits), created_by=None
    )
    ring.add(issued.secret_hash, issued.principal)
    return {"Authorization": f"Bearer {issued.secret}"}


async def test_the_new_routes_need_the_worker_scope_and_keep_to_the_keys_queues(
    keyed: tuple[httpx.AsyncClient, KeyRing], store: PostgresStore
) -> None:
    client, ring = keyed
    reader = await _key(store, ring, Scope.JOBS_READ)
    emails = await _key(store, ring, Scope.WORKER, queues=["emails"])
    lease = {"job_id": 1, "lease_token": str(uuid.uuid4())}
    for method, path, body in [
        ("POST", "/v1/workers/leases", {"leases": [lease]}),
        ("POST", "/v1/workers/release", {"leases": [lease]}),
        ("POST", "/v1/workers/w-1/gone", None),
    ]:
        refused = await client.request(method, path, json=body, headers=reader)
        assert_problem(refused, 403, "worker")
        unknown = await client.request(
            method, path, json=body, headers={"Authorization": "Bearer nope"}
        )
        assert unknown.status_code == 401
    mine = await submit(client, {"task": "x"}, queue="emails")
    other = await submit(client, {"task": "x"})
    [in_reach] = await claim(client, queues=["emails"])
    [out_of_reach] = await claim(client)
    assert (in_reach["id"], out_of_reach["id"]) == (mine, other)
    both = {"leases": _leases(in_reach, out_of_reach)}
    check = await client.post("/v1/workers/leases", json=both, headers=emails)
    assert check.status_code == 200, check.text
    assert check.json()["lost"] == [other], "a job outside the key's queues is not kept"
    assert set(check.json()["lease_expires_at"]) == {str(mine)}
    released = await client.post("/v1/workers/release", json=both, headers=emails)
    assert released.json() == {"released": 1}
    assert (await job(client, mine))["status"] == "queued"
    assert (await job(client, other))["status"] == "processing", "out of the key's reach"
    await claim(client, worker={**WORKER, "id": "default-worker"})
    assert_problem(
        await client.post("/v1/workers/default-worker/gone", headers=emails), 403, "default"
    )
    assert (await client.post("/v1/workers/default-worker/gone")).status_code == 204


async def test_a_key_limited_to_some_tasks_claims_only_those(
    keyed: tuple[httpx.AsyncClient, KeyRing], store: PostgresStore
) -> None:
    client, ring = keyed
    resizer = await _key(store, ring, Scope.WORKER, tasks=["resize"])
    resize = await submit(client, {"task": "resize"})
    await submit(client, {"task": "email"})
    body = {"worker": WORKER, "queues": ["default"], "max_jobs": 10}
    claimed = await client.post("/v1/workers/claim", json=body, headers=resizer)
    assert claimed.status_code == 200, claimed.text
    assert [j["id"] for j in claimed.json()] == [resize], "only the key's task"
    asked = {**body, "tasks": ["email"]}
    assert_problem(
        await client.post("/v1/workers/claim", json=asked, headers=resizer), 403, "email"
    )
    [email] = await claim(client, tasks=["email"])  # still there for a key that may
    assert email["task"] == "email"


async def test_a_keys_queues_hold_for_one_jobs_heartbeat_and_progress(
    keyed: tuple[httpx.AsyncClient, KeyRing], store: PostgresStore
) -> None:
    """A key limited to `emails` cannot keep or report on a job of another queue, even with
    its lease token: the answer is the one for a lease that does not hold."""
    client, ring = keyed
    emails = await _key(store, ring, Scope.WORKER, queues=["emails"])
    mine = await submit(client, {"task": "x"}, queue="emails")
    other = await submit(client, {"task": "x"})
    [in_reach] = await claim(client, queues=["emails"])
    [out_of_reach] = await claim(client)
    assert (in_reach["id"], out_of_reach["id"]) == (mine, other)
    for claimed, status in ((in_reach, 200), (out_of_reach, 409)):
        token = {"lease_token": claimed["lease_token"]}
        beat = await client.post(f"/v1/jobs/{claimed['id']}/heartbeat", json=token, headers=emails)
        assert beat.status_code == status, beat.text
        progress = await client.post(
            f"/v1/jobs/{claimed['id']}/progress", json={**token, "progress": 0.5}, headers=emails
        )
        assert progress.status_code == (204 if status == 200 else 409), progress.text
    assert (await job(client, other))["progress"] is None
