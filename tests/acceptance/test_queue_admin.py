"""Queue settings on a real `jqs serve` over real sockets: strict PATCH, DELETE, and a
queue's max_queued answered with 429 and Retry-After until workers drain it."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.acceptance.conftest import StartJqs
from tests.acceptance.test_bad_input import ADMIN_KEY, AUTH, _problem

JOB = {"task": "sleep", "seconds": 0}


def test_a_full_queue_answers_429_until_it_drains(dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY, JQS_QUEUES="default,bounded")
    with httpx.Client(base_url=proc.url, timeout=10, headers=AUTH) as client:
        # Paused, so that nothing drains it before the test says so.
        set_up = client.patch("/queues/bounded", json={"max_queued": 5, "paused": True})
        assert set_up.status_code == 200, set_up.text
        assert set_up.json()["max_queued"] == 5
        for _ in range(3):
            assert client.post("/jobs?queue=bounded", json=JOB).status_code == 201
        batch = {"jobs": [{"payload": JOB, "queue": "bounded"}] * 3}
        too_many = _problem(client.post("/jobs/batch", json=batch), 429, "room for 2")
        assert too_many["max_queued"] == 5
        assert client.post("/jobs/batch", json={"jobs": batch["jobs"][:2]}).status_code == 201
        full = client.post("/jobs?queue=bounded", json=JOB)
        _problem(full, 429, "'bounded' is full", "max_queued of 5")
        assert int(full.headers["Retry-After"]) >= 1
        _problem(client.post("/jobs/batch", json={"jobs": batch["jobs"][:1]}), 429, "is full")
        assert client.post("/jobs", json=JOB).status_code == 201, "other queues are not bound"
        [listed] = [q for q in client.get("/queues").json() if q["name"] == "bounded"]
        assert (listed["max_queued"], listed["counts"]["queued"]) == (5, 5)
        busy = _problem(client.delete("/queues/bounded"), 409, "5 unfinished jobs")
        assert busy["unfinished"] == 5

        # Workers drain it; within a recount the queue takes jobs again.
        assert client.patch("/queues/bounded", json={"paused": False}).status_code == 200
        deadline = time.monotonic() + 15
        while True:
            again = client.post("/jobs?queue=bounded", json=JOB)
            if again.status_code == 201:
                break
            assert again.status_code == 429, again.text
            assert time.monotonic() < deadline, "still refused long after the queue drained"
            time.sleep(float(again.headers["Retry-After"]) / 4)

        # Removing settings takes queues:admin, on that queue.
        made = client.post("/keys", json={"name": "submit-only", "scopes": ["jobs:submit"]})
        assert made.status_code == 201, made.text
        narrow = {"Authorization": f"Bearer {made.json()['secret']}"}
        _problem(client.delete("/queues/bounded", headers=narrow), 403, "queues:admin")

        # Settings go once no job of the queue is unfinished; then it has no bound.
        deadline = time.monotonic() + 15
        while (gone := client.delete("/queues/bounded")).status_code == 409:
            assert time.monotonic() < deadline, gone.text
            time.sleep(0.1)
        assert gone.status_code == 204, gone.text
        _problem(client.delete("/queues/bounded"), 404, "no settings")
        for _ in range(8):
            assert client.post("/jobs?queue=bounded", json=JOB).status_code == 201
    assert proc.events("queue_deleted")
    assert not [line for line in proc.events("http_request") if line["status_code"] >= 500]


async def _flood(urls: list[str], queue: str, count: int) -> list[int]:
    """`count` concurrent POST /jobs to `queue`, spread over `urls`; their statuses."""
    limits = httpx.Limits(max_connections=100)
    clients = [
        httpx.AsyncClient(base_url=url, timeout=30, headers=AUTH, limits=limits) for url in urls
    ]
    try:
        answers = await asyncio.gather(
            *(
                clients[n % len(clients)].post(f"/jobs?queue={queue}", json=JOB)
                for n in range(count)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    return [answer.status_code for answer in answers]


async def _queued(url: str, queue: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=10, headers=AUTH) as client:
        [listed] = [q for q in (await client.get("/queues")).json() if q["name"] == queue]
    count: int = listed["counts"]["queued"]
    return count


async def _bound(url: str, queue: str, max_queued: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10, headers=AUTH) as client:
        answer = await client.patch(f"/queues/{queue}", json={"max_queued": max_queued})
    assert answer.status_code == 200, answer.text


async def test_one_api_process_never_takes_a_queue_past_its_bound(
    dsn: str, start_jqs: StartJqs
) -> None:
    proc = start_jqs("serve", "--no-worker", DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY)
    await _bound(proc.url, "burst", 30)
    statuses = await _flood([proc.url], "burst", 120)
    assert sorted(set(statuses)) == [201, 429]
    assert statuses.count(201) == 30, "concurrent requests share INSERTs, and still fit"
    assert await _queued(proc.url, "burst") == 30


async def test_with_several_api_processes_the_bound_is_soft_by_one_interval(
    dsn: str, start_jqs: StartJqs
) -> None:
    env = {"DATABASE_URL": dsn, "JQS_ADMIN_KEY": ADMIN_KEY}
    urls = [start_jqs("serve", "--no-worker", **env).url for _ in range(2)]
    await _bound(urls[0], "burst", 30)
    await asyncio.sleep(1.5)  # the other process has counted since: it knows the bound
    statuses = await _flood(urls, "burst", 120)
    # Each process stops at the bound by its own count: together, at most twice it.
    accepted = statuses.count(201)
    assert 30 <= accepted <= 60, accepted
    await asyncio.sleep(1.5)  # both have recounted since: both refuse
    assert sorted(set(await _flood(urls, "burst", 4))) == [429]
    assert await _queued(urls[1], "burst") == accepted
