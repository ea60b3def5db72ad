"""The worker pool against a real database: concurrency bound, outcomes, shutdown."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import asyncpg
import orjson
import pytest

from jqs.clock import SystemClock
from jqs.models import JobStatus, Lease
from jqs.outcome import Completed
from jqs.store import PostgresStore
from jqs.tasks.registry import TaskRegistry
from jqs.worker import PoolSettings, WorkerPool
from jqs.worker.outcomes import OutcomeWriter
from tests.support.jobs import add, claim, raw
from tests.support.waiting import eventually


async def statuses(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


async def all_finished(conn: asyncpg.Connection, n: int) -> bool:
    counts = await statuses(conn)
    return counts.get("completed", 0) + counts.get("failed", 0) == n


class Gauge:
    """Counts handlers running at once, and the most ever seen."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.runs = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.runs += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


@pytest.mark.parametrize(("concurrency", "jobs"), [(1, 4), (4, 20), (7, 30)])
async def test_pool_runs_n_at_once_and_never_more(
    store: PostgresStore, conn: asyncpg.Connection, concurrency: int, jobs: int
) -> None:
    gauge = Gauge()

    async def work(payload: dict[str, Any]) -> int:
        gauge.enter()
        try:
            await asyncio.sleep(0.05)
        finally:
            gauge.leave()
        return int(payload["n"])

    registry = TaskRegistry()
    registry.register("work", work)
    for n in range(jobs):
        await add(store, {"task": "work", "n": n})
    pool = WorkerPool(store, registry, PoolSettings(concurrency=concurrency, poll_interval=0.05))
    await pool.start()
    try:
        await eventually(lambda: all_finished(conn, jobs))
    finally:
        await pool.stop(5)
    assert gauge.peak == concurrency
    assert gauge.runs == jobs
    assert await statuses(conn) == {"completed": jobs}
    results = await conn.fetch("SELECT payload->'n' AS n, result FROM jobs")
    assert all(orjson.loads(r["n"]) == orjson.loads(r["result"]) for r in results)


async def test_sync_handlers_run_in_threads_concurrently(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    gauge = Gauge()
    loop_thread = threading.get_ident()
    seen_threads: set[int] = set()
    barrier = threading.Barrier(3, timeout=5)

    def blocking(payload: dict[str, Any]) -> str:
        seen_threads.add(threading.get_ident())
        gauge.enter()
        barrier.wait()  # only passes if three handlers run at the same time
        gauge.leave()
        return "done"

    registry = TaskRegistry()
    registry.register("blocking", blocking)
    for _ in range(3):
        await add(store, {"task": "blocking"})
    pool = WorkerPool(store, registry, PoolSettings(concurrency=3, poll_interval=0.05))
    await pool.start()
    try:
        await eventually(lambda: all_finished(conn, 3))
    finally:
        await pool.stop(5)
    assert await statuses(conn) == {"completed": 3}
    assert loop_thread not in seen_threads


async def test_failures_are_recorded(store: PostgresStore, conn: asyncpg.Connection) -> None:
    def raises(payload: dict[str, Any]) -> None:
        raise RuntimeError("disk on fire")

    async def not_json(payload: dict[str, Any]) -> object:
        return {"when": object()}

    registry = TaskRegistry()
    registry.register("raises", raises)
    registry.register("not_json", not_json)
    registry.register("ok", lambda payload: "fine")
    a = await add(store, {"task": "raises"})
    b = await add(store, {"task": "missing_task"})
    c = await add(store, {"no_task": True})
    d = await add(store, {"task": "not_json"})
    pool = WorkerPool(store, registry, PoolSettings(concurrency=2, poll_interval=0.05))
    await pool.start()
    try:
        await eventually(lambda: all_finished(conn, 4))
    finally:
        await pool.stop(5)

    failed_a = await store.get(a.id)
    assert failed_a.status is JobStatus.FAILED
    assert failed_a.result["error"] == "disk on fire"
    assert failed_a.result["type"] == "RuntimeError"
    assert "Traceback" in failed_a.result["traceback"]

    failed_b = await store.get(b.id)
    assert failed_b.result["type"] == "UnknownTask"
    assert "'missing_task'" in failed_b.result["error"]
    assert failed_b.result["registered"] == ["not_json", "ok", "raises"]

    failed_c = await store.get(c.id)
    assert 'no "task" field' in failed_c.result["error"]

    failed_d = await store.get(d.id)
    assert failed_d.status is JobStatus.FAILED
    assert "not JSON" in failed_d.result["error"]


async def test_results_with_nul_are_stored_safely(store: PostgresStore) -> None:
    registry = TaskRegistry()
    registry.register("nul", lambda payload: {"text": "a\x00b"})
    job = await add(store, {"task": "nul"})
    pool = WorkerPool(store, registry, PoolSettings(concurrency=1, poll_interval=0.05))
    await pool.start()
    try:
        done = await eventually(lambda: _finished(store, job.id))
    finally:
        await pool.stop(5)
    assert done.status is JobStatus.COMPLETED
    assert done.result == {"text": "a\ufffdb"}


async def _finished(store: PostgresStore, job_id: int) -> Any:
    job = await store.get(job_id)
    return job if job.status.finished else None


async def test_notify_starts_jobs_before_the_next_poll(store: PostgresStore) -> None:
    registry = TaskRegistry()
    registry.register("ok", lambda payload: "fine")
    # A poll interval far longer than the test timeout: only notify() can start the job.
    pool = WorkerPool(store, registry, PoolSettings(concurrency=1, poll_interval=60))
    await pool.start()
    try:
        await asyncio.sleep(0.05)  # let the first (empty) claim happen
        job = await add(store, {"task": "ok"})
        pool.notify()
        done = await eventually(lambda: _finished(store, job.id), within=5)
    finally:
        await pool.stop(5)
    assert done.status is JobStatus.COMPLETED


async def test_stop_drains_short_jobs_and_hands_back_long_ones(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    started: list[float] = []

    async def nap(payload: dict[str, Any]) -> str:
        started.append(payload["s"])
        await asyncio.sleep(float(payload["s"]))
        return "rested"

    registry = TaskRegistry()
    registry.register("nap", nap)
    short = await add(store, {"task": "nap", "s": 0.1})
    long = await add(store, {"task": "nap", "s": 30})
    pool = WorkerPool(store, registry, PoolSettings(concurrency=2, poll_interval=0.05))
    await pool.start()
    await eventually(lambda: _processing(conn, 2))

    async def both_started() -> bool:
        return len(started) == 2

    await eventually(both_started)
    # Room for a loaded machine: the short job's 0.1 s and its write fit many times over.
    await pool.stop(3.0)
    assert (await store.get(short.id)).status is JobStatus.COMPLETED
    back = await store.get(long.id)
    assert back.status is JobStatus.QUEUED
    assert back.attempts == 0, "a handed-back attempt is not counted"
    assert await statuses(conn) == {"completed": 1, "queued": 1}


async def _processing(conn: asyncpg.Connection, n: int) -> bool:
    return (await statuses(conn)).get("processing", 0) == n


async def test_two_pools_share_the_work_without_running_a_job_twice(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    runs: list[int] = []

    async def once(payload: dict[str, Any]) -> None:
        runs.append(int(payload["n"]))
        await asyncio.sleep(0.01)

    registry = TaskRegistry()
    registry.register("once", once)
    for n in range(60):
        await add(store, {"task": "once", "n": n})
    pools = [
        WorkerPool(store, registry, PoolSettings(concurrency=3, poll_interval=0.05))
        for _ in range(2)
    ]
    for pool in pools:
        await pool.start()
    try:
        await eventually(lambda: all_finished(conn, 60))
    finally:
        for pool in pools:
            await pool.stop(5)
    assert sorted(runs) == list(range(60))
    workers = await conn.fetch("SELECT DISTINCT worker_id FROM jobs")
    assert len(workers) == 2, "both pools took part"


async def test_stop_is_idempotent_and_safe_before_start(store: PostgresStore) -> None:
    pool = WorkerPool(store, TaskRegistry(), PoolSettings(concurrency=1))
    await pool.stop(0)
    await pool.stop(0)
    await pool.start()  # after stop, start does nothing
    assert pool.active == 0


async def test_outcome_writer_writes_each_end_once_and_fences_it(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    for n in range(3):
        await add(store, {"task": "x", "n": n})
    claimed = await claim(store, limit=3)
    writer = OutcomeWriter(store, clock=SystemClock(), persist_for=1.0, worker_id="w")
    for job in claimed[:2]:
        writer.add(job, Completed(raw({"n": job.id})), 1.0)
    stale = claimed[2]._replace(lease=Lease(claimed[2].id, uuid.uuid4()))  # not its lease
    writer.add(stale, Completed(raw({"n": "stale"})), 1.0)
    assert writer.pending == 3
    await asyncio.wait_for(writer.idle(), 5)
    assert writer.pending == 0
    assert await statuses(conn) == {"completed": 2, "processing": 1}
