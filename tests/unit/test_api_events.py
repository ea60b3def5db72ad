"""?wait and the event routes on the in-memory store."""

from __future__ import annotations

import asyncio

from jqs.models import EventType, Job
from jqs.outcome import Completed
from jqs.port import Finish
from jqs.testing import ManualClock, MemoryStore
from tests.support.http import api_client
from tests.support.jobs import claim, raw


async def finish_soon(store: MemoryStore, delay: float = 0.05) -> None:
    await asyncio.sleep(delay)
    [job] = await claim(store, limit=1)
    await store.finish([Finish(job.lease, Completed(raw({"done": job.id})))])


async def test_get_with_wait_answers_when_the_job_completes() -> None:
    store = MemoryStore(ManualClock())
    async with api_client(store) as client:
        job = (await client.post("/jobs", json={"task": "t"})).json()
        finishing = asyncio.create_task(finish_soon(store))
        answer = await asyncio.wait_for(client.get(f"/jobs/{job['id']}?wait=30"), 10)
        await finishing
    assert answer.status_code == 200
    assert answer.json()["status"] == "completed"
    assert answer.json()["result"] == {"done": job["id"]}


async def test_post_with_wait_submits_then_waits() -> None:
    store = MemoryStore(ManualClock())
    async with api_client(store) as client:
        finishing = asyncio.create_task(finish_soon(store))
        answer = await asyncio.wait_for(client.post("/jobs?wait=30", json={"task": "t"}), 10)
        await finishing
    assert answer.status_code == 201
    assert answer.json()["status"] == "completed"


async def test_post_with_wait_reads_its_job_once_it_has_ended_and_not_before() -> None:
    store = MemoryStore(ManualClock())
    reads: list[list[int]] = []
    get_many = store.get_many

    async def counted(job_ids: list[int]) -> list[Job]:
        reads.append(list(job_ids))
        return await get_many(job_ids)

    store.get_many = counted  # type: ignore[method-assign]
    async with api_client(store) as client:
        finishing = asyncio.create_task(finish_soon(store))
        answer = await asyncio.wait_for(client.post("/jobs?wait=30", json={"task": "t"}), 10)
        await finishing
        assert answer.json()["status"] == "completed"
        assert reads == [[answer.json()["id"]]], "one read: the job as it ended"
        job = (await client.post("/jobs", json={"task": "t"})).json()
        reads.clear()
        waited = await client.get(f"/jobs/{job['id']}?wait=0.2")
        assert waited.json()["status"] == "queued"
        assert len(reads) == 2, "a GET reads before it waits, and as it answers"


async def test_a_wait_out_of_range_is_a_problem() -> None:
    store = MemoryStore(ManualClock())
    async with api_client(store) as client:
        job = (await client.post("/jobs", json={"task": "t"})).json()
        for bad in ("0", "61", "nan", "x", "-1"):
            got = await client.get(f"/jobs/{job['id']}?wait={bad}")
            assert got.status_code == 422, bad
            posted = await client.post(f"/jobs?wait={bad}", json={"task": "t"})
            assert posted.status_code == 422, bad
            assert posted.headers["content-type"] == "application/problem+json"


async def test_the_timeline_and_its_stream() -> None:
    store = MemoryStore(ManualClock())
    async with api_client(store) as client:
        job = (await client.post("/jobs", json={"task": "t"})).json()
        finishing = asyncio.create_task(finish_soon(store))
        frames = []
        async with client.stream(
            "GET", f"/jobs/{job['id']}/events", headers={"Accept": "text/event-stream"}
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                frames.append(line)
        await finishing
        timeline = (await client.get(f"/jobs/{job['id']}/events")).json()
        missing = await client.get("/jobs/99999/events")
    assert [e["type"] for e in timeline] == [
        EventType.ENQUEUED,
        EventType.STARTED,
        EventType.COMPLETED,
    ]
    assert set(timeline[0]) == {"id", "type", "job_id", "queue", "task", "at", "data"}
    ids = [line.removeprefix("id: ") for line in frames if line.startswith("id: ")]
    assert ids == [str(e["id"]) for e in timeline]
    assert missing.status_code == 404
