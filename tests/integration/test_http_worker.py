"""The worker pool over HTTP (jqs.worker.http_queue) against the API app and a real
PostgreSQL: the pool that `jqs worker --url` runs, its every call a request to /v1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from jqs import current_job
from jqs.api.app import create_app
from jqs.api.state import ApiState
from jqs.remote import ClaimHub, Ends, RemoteWorkers
from jqs.store import PostgresStore
from jqs.tasks.registry import TaskRegistry
from jqs.worker import PoolSettings, WorkerPool
from jqs.worker.executor import RetryPolicy
from jqs.worker.http_queue import HttpQueue, ServerLink
from tests.support.waiting import eventually

FINISHED = ("completed", "failed", "cancelled")


@pytest.fixture
async def app(store: PostgresStore) -> AsyncIterator[Any]:
    hub = ClaimHub(store, poll_interval=0.1)
    await hub.start()
    remote = RemoteWorkers(store, hub, Ends(store, policy=RetryPolicy()), lease_seconds=30.0)
    yield create_app(ApiState(store=store, on_enqueue=hub.notify, remote=remote))
    hub.close()
    await hub.stop()


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://jqs.test") as client:
        yield client


def _registry() -> TaskRegistry:
    async def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return {"echoed": payload["n"]}

    async def flaky(payload: dict[str, Any]) -> int:
        if current_job().attempt <= int(payload["times"]):
            raise RuntimeError("not yet")
        return current_job().attempt

    async def steps(payload: dict[str, Any]) -> str:
        for done in (1, 2):
            current_job().progress(done / 2, f"step {done}")
            await asyncio.sleep(0.3)
        return "done"

    async def block(payload: dict[str, Any]) -> None:
        await asyncio.sleep(60)

    registry = TaskRegistry()
    for name, handler in [("echo", echo), ("flaky", flaky), ("steps", steps), ("block", block)]:
        registry.register(name, handler)
    return registry


@pytest.fixture
async def queue(app: Any) -> AsyncIterator[HttpQueue]:
    link = ServerLink("http://jqs.test", long_poll=2.0)
    queue = HttpQueue(link, transport=httpx.ASGITransport(app=app))
    yield queue
    await queue.aclose()


def _pool(queue: HttpQueue, concurrency: int = 4) -> WorkerPool:
    settings = PoolSettings(
        concurrency=concurrency,
        poll_interval=0.1,
        lease_seconds=3.0,
        retry=RetryPolicy(backoff_base=0.05, backoff_max=0.1),
    )
    return WorkerPool(queue, _registry(), settings)


async def submit(client: httpx.AsyncClient, payload: dict[str, Any], **params: Any) -> int:
    answer = await client.post("/jobs", json=payload, params=params)
    assert answer.status_code == 201, answer.text
    job_id: int = answer.json()["id"]
    return job_id


async def job(client: httpx.AsyncClient, job_id: int) -> dict[str, Any]:
    found: dict[str, Any] = (await client.get(f"/jobs/{job_id}")).json()
    return found


async def _ended(client: httpx.AsyncClient, job_id: int) -> dict[str, Any]:
    async def ended() -> dict[str, Any]:
        found = await job(client, job_id)
        return found if found["status"] in FINISHED else {}

    return await eventually(ended, within=20)


async def test_the_pool_runs_jobs_over_http_as_it_does_on_the_database(
    client: httpx.AsyncClient, queue: HttpQueue
) -> None:
    pool = _pool(queue)
    await pool.start()
    try:
        echo = await submit(client, {"task": "echo", "n": 1})
        flaky = await submit(client, {"task": "flaky", "times": 1}, max_attempts=3)
        doomed = await submit(client, {"task": "flaky", "times": 9}, max_attempts=2)
        steps = await submit(client, {"task": "steps"})
        unknown = await submit(client, {"task": "nobody"})
        done = await _ended(client, echo)
        assert (done["status"], done["result"]) == ("completed", {"echoed": 1})
        done = await _ended(client, flaky)
        assert (done["status"], done["attempts"], done["result"]) == ("completed", 2, 2)
        [error] = done["errors"]
        assert (error["type"], error["error"], error["attempt"]) == ("RuntimeError", "not yet", 1)
        assert "RuntimeError: not yet" in error["traceback"]
        done = await _ended(client, doomed)
        assert (done["status"], done["attempts"], len(done["errors"])) == ("failed", 2, 2)
        done = await _ended(client, steps)
        assert done["status"] == "completed"
        events = (await client.get(f"/jobs/{steps}/events")).json()
        assert "job.progress" in [e["type"] for e in events]
        done = await _ended(client, unknown)
        assert (done["status"], done["result"]["type"]) == ("failed", "UnknownTask")
        listed = {w["id"] for w in (await client.get("/workers")).json()}
        assert pool.worker_id in listed
    finally:
        await pool.stop(5)
    listed = {w["id"] for w in (await client.get("/workers")).json()}
    assert pool.worker_id not in listed, "a stopped worker says it is gone"


async def test_a_job_cancelled_while_it_runs_ends_cancelled(
    client: httpx.AsyncClient, queue: HttpQueue
) -> None:
    pool = _pool(queue)
    await pool.start()
    try:
        job_id = await submit(client, {"task": "block"})

        async def running() -> bool:
            found = await job(client, job_id)
            return bool(found["status"] == "processing")

        await eventually(running, within=10)
        assert (await client.post(f"/jobs/{job_id}/cancel")).status_code == 202
        done = await _ended(client, job_id)
        assert done["status"] == "cancelled"
    finally:
        await pool.stop(5)


async def test_stopping_hands_back_what_did_not_finish_and_ends_a_waiting_claim(
    client: httpx.AsyncClient, queue: HttpQueue
) -> None:
    pool = _pool(queue, concurrency=2)
    await pool.start()
    ids = [await submit(client, {"task": "block"}) for _ in range(2)]

    async def both_running() -> bool:
        found = [(await job(client, i))["status"] for i in ids]
        return found == ["processing"] * len(ids)

    await eventually(both_running, within=10)
    queue.interrupt()
    began = asyncio.get_running_loop().time()
    await pool.stop(0.2)
    assert asyncio.get_running_loop().time() - began < 3
    for job_id in ids:
        back = await job(client, job_id)
        assert (back["status"], back["attempts"]) == ("queued", 0)
        events = (await client.get(f"/jobs/{job_id}/events")).json()
        assert events[-1]["type"] == "job.released"


async def test_an_idle_pool_stops_at_once_while_its_claim_waits(
    client: httpx.AsyncClient, queue: HttpQueue
) -> None:
    pool = _pool(queue)
    await pool.start()
    await asyncio.sleep(0.5)  # the first claim came back empty: the next one waits
    queue.interrupt()
    began = asyncio.get_running_loop().time()
    await pool.stop(5)
    assert asyncio.get_running_loop().time() - began < 1
    late = await submit(client, {"task": "echo", "n": 2})
    await asyncio.sleep(0.3)
    assert (await job(client, late))["status"] == "queued", "nothing claims after the stop"


async def test_a_waiting_claim_whose_client_hangs_up_leaves_at_once(store: PostgresStore) -> None:
    """Over a real HTTP server: the client closes its connection while its claim waits; the
    claim leaves at once (not when its wait runs out), and a job sent then is not taken by
    it."""
    hub = ClaimHub(store, poll_interval=3600)  # no tick: only a departure ends the wait
    remote = RemoteWorkers(store, hub, Ends(store, policy=RetryPolicy()), lease_seconds=30.0)
    app = create_app(ApiState(store=store, on_enqueue=hub.notify, remote=remote))
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # No log config: uvicorn would otherwise set its loggers up for the rest of the session.
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    body = b'{"worker": {"id": "leaves"}, "queues": ["hangup"], "max_jobs": 1, "wait": 30}'
    try:

        async def started() -> bool:
            return server.started

        async def waiting(count: int) -> bool:
            return hub.waiting == count

        await eventually(started)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /v1/workers/claim HTTP/1.1\r\nHost: jqs.test\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        await eventually(lambda: waiting(1))
        writer.close()
        await eventually(lambda: waiting(0), within=5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            sent = await client.post("/jobs?queue=hangup", json={"task": "x"})
            assert sent.status_code == 201
            job = (await client.get(f"/jobs/{sent.json()['id']}")).json()
        assert job["status"] == "queued", "nobody took the job"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)


async def test_an_idle_pool_over_http_starts_a_new_job_without_waiting_for_its_poll(
    client: httpx.AsyncClient, queue: HttpQueue
) -> None:
    """After a claim came back short, the next one waits on the server: the pool makes it at
    once, so jobs sent one at a time start as they come, not a poll interval later."""
    settings = PoolSettings(concurrency=4, poll_interval=30.0, lease_seconds=3.0)
    pool = WorkerPool(queue, _registry(), settings)
    await pool.start()
    try:
        for n in range(3):
            began = asyncio.get_running_loop().time()
            done = await _ended(client, await submit(client, {"task": "echo", "n": n}))
            assert done["result"] == {"echoed": n}
            assert asyncio.get_running_loop().time() - began < 10, "it waited for the poll"
    finally:
        await pool.stop(5)
