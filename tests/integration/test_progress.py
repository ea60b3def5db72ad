"""Handlers' progress reports on PostgreSQL, through the real worker pool: throttled per job,
shown on the job while it runs, in its events for good, gone from the job once it ends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from jqs import current_job
from jqs.models import EventType, Job, JobEvent, JobStatus
from jqs.port import JobEventsRead
from jqs.store import PostgresStore
from jqs.tasks.registry import TaskRegistry
from jqs.worker import PoolSettings, WorkerPool
from jqs.worker.progress import PROGRESS_INTERVAL
from tests.support.http import api_client
from tests.support.jobs import add
from tests.support.waiting import eventually


def progress_events(events: list[JobEvent]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.type is EventType.PROGRESS and e.data is not None]


async def showing(store: PostgresStore, job_id: int, message: str) -> Job | None:
    job = await store.get(job_id)
    shown = job.progress
    return job if shown is not None and shown.get("message") == message else None


async def test_reports_are_throttled_shown_while_running_and_logged(store: PostgresStore) -> None:
    go_on, finish = asyncio.Event(), asyncio.Event()

    async def resize(payload: dict[str, Any]) -> str:
        job = current_job()
        for done in (1, 2, 3):  # three quick reports: the latest wins
            job.progress(done / 10, f"resized {done} of 10", data={"done": done})
        await go_on.wait()
        await asyncio.sleep(PROGRESS_INTERVAL + 0.05)  # a pause longer than the interval
        job.progress(0.9, "resized 9 of 10")
        await finish.wait()
        return "resized"

    registry = TaskRegistry()
    registry.register("resize", resize)
    added = await add(store, {"task": "resize"})
    pool = WorkerPool(store, registry, PoolSettings(concurrency=2, poll_interval=0.05))
    await pool.start()
    try:
        running = await eventually(lambda: showing(store, added.id, "resized 3 of 10"))
        assert running.status is JobStatus.PROCESSING
        assert running.progress is not None
        assert running.progress["progress"] == 0.3
        assert running.progress["data"] == {"done": 3}
        assert "at" in running.progress
        async with api_client(store) as client:  # as the API shows it, alone and listed
            shown = (await client.get(f"/jobs/{added.id}")).json()["progress"]
            listed = (await client.get("/jobs?status=processing")).json()
        assert shown == orjson.loads(orjson.dumps(running.progress))
        assert [job["progress"] for job in listed] == [shown]
        go_on.set()
        later = await eventually(lambda: showing(store, added.id, "resized 9 of 10"))
        assert later.progress is not None
        assert "data" not in later.progress, "each report stands alone"
        finish.set()

        async def done() -> Job | None:
            job = await store.get(added.id)
            return job if job.status.finished else None

        ended = await eventually(done)
    finally:
        await pool.stop(5)
    assert ended.status is JobStatus.COMPLETED
    assert ended.progress is None, "an ended attempt shows no progress"
    events = await store.events_of_job(JobEventsRead(added.id))
    assert progress_events(events) == [
        {"progress": 0.3, "message": "resized 3 of 10", "data": {"done": 3}},
        {"progress": 0.9, "message": "resized 9 of 10"},
    ]
    kinds = [e.type for e in events]
    assert kinds.index(EventType.STARTED) < kinds.index(EventType.PROGRESS)
    assert kinds[-1] is EventType.COMPLETED


async def test_a_sync_handler_reporting_all_the_time_is_written_a_few_times_a_second(
    store: PostgresStore,
) -> None:
    spent: list[float] = []

    def count(payload: dict[str, Any]) -> int:
        job = current_job()
        began = time.monotonic()
        n = 0
        while time.monotonic() - began < 1.0:  # a report every 5 ms for a second
            n += 1
            job.progress(min(n / 200, 1.0), f"step {n}")
            time.sleep(0.005)
        spent.append(time.monotonic() - began)
        return n

    registry = TaskRegistry()
    registry.register("count", count)
    added = await add(store, {"task": "count"})
    pool = WorkerPool(store, registry, PoolSettings(concurrency=1, poll_interval=0.05))
    await pool.start()
    try:

        async def done() -> Job | None:
            job = await store.get(added.id)
            return job if job.status.finished else None

        ended = await eventually(done)
    finally:
        await pool.stop(5)
    assert ended.status is JobStatus.COMPLETED
    reports = progress_events(await store.events_of_job(JobEventsRead(added.id)))
    # Writes begin at least an interval apart; one may still begin as the handler returns.
    most = int(spent[0] / PROGRESS_INTERVAL) + 2
    assert 2 <= len(reports) <= most, (len(reports), spent)
    values = [r["progress"] for r in reports]
    assert values == sorted(values), "each write is the latest report at its time"
