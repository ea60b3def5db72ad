"""Retries, timeouts, cancellation, leases and rescue, in-process against real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from jqs.maintenance.rescuer import Rescuer
from jqs.models import Job, JobStatus
from jqs.outcome import Completed, cancelled_result
from jqs.port import Finish, LeaseCheckParams, RescueParams
from jqs.store import PostgresStore
from jqs.tasks.registry import TaskRegistry
from jqs.worker import PoolSettings, WorkerPool
from jqs.worker.executor import RetryPolicy
from tests.support.jobs import add, claim, raw
from tests.support.waiting import eventually


class _NoJitter(random.Random):
    def random(self) -> float:
        return 0.0


@asynccontextmanager
async def running(
    store: PostgresStore,
    handlers: dict[str, Callable[..., Any]],
    *,
    concurrency: int = 2,
    lease_seconds: float = 30.0,
    backoff_base: float = 0.05,
) -> AsyncIterator[WorkerPool]:
    registry = TaskRegistry()
    for name, fn in handlers.items():
        registry.register(name, fn)
    settings = PoolSettings(
        concurrency=concurrency,
        poll_interval=0.02,
        lease_seconds=lease_seconds,
        retry=RetryPolicy(backoff_base=backoff_base, backoff_max=10),
    )
    pool = WorkerPool(store, registry, settings, rng=_NoJitter())
    await pool.start()
    try:
        yield pool
    finally:
        await pool.stop(2)


async def finished(store: PostgresStore, job_id: int, within: float = 10) -> Job:
    async def check() -> Job | None:
        job = await store.get(job_id)
        return job if job.status.finished else None

    return await eventually(check, within=within)


async def test_a_retry_that_succeeds_completes(store: PostgresStore) -> None:
    calls: list[int] = []

    async def flaky(payload: dict[str, Any]) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("not yet")
        return "finally"

    job = await add(store, {"task": "flaky"}, max_attempts=5)
    async with running(store, {"flaky": flaky}):
        done = await finished(store, job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.result == "finally"
    assert done.attempts == 3
    assert len(done.errors) == 2


async def test_timeouts_fail_the_attempt(store: PostgresStore) -> None:
    async def slow(payload: dict[str, Any]) -> None:
        await asyncio.sleep(30)

    def slow_sync(payload: dict[str, Any]) -> None:
        time.sleep(1.0)

    a = await add(store, {"task": "slow"}, max_attempts=2, timeout=0.2)
    b = await add(store, {"task": "slow_sync"}, max_attempts=1, timeout=0.2)
    began = time.monotonic()
    async with running(store, {"slow": slow, "slow_sync": slow_sync}):
        done_a = await finished(store, a.id)
        done_b = await finished(store, b.id)
    assert time.monotonic() - began < 5
    assert done_a.status is JobStatus.FAILED
    assert done_a.attempts == 2
    assert [e["type"] for e in done_a.errors] == ["Timeout", "Timeout"]
    assert "timed out after 0.2s" in done_a.result["error"]
    assert done_b.status is JobStatus.FAILED
    assert done_b.result["type"] == "Timeout"


async def test_cancel_queued_job_never_runs(store: PostgresStore) -> None:
    job = await add(store, {"task": "never"})
    change = await store.cancel(job.id, cancelled_result(0))
    assert change.changed
    assert change.job.status is JobStatus.CANCELLED
    ran: list[int] = []
    async with running(store, {"never": lambda p: ran.append(1)}):
        await asyncio.sleep(0.2)
    assert ran == []
    change = await store.cancel(job.id, cancelled_result(0))
    assert not change.changed
    assert change.job.status is JobStatus.CANCELLED


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_cancel_running_job_interrupts_it_within_a_second(
    store: PostgresStore, kind: str
) -> None:
    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def long_async(payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(30)

    def long_sync(payload: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(started.set)
        time.sleep(3)

    handler = long_async if kind == "async" else long_sync
    job = await add(store, {"task": "long"}, max_attempts=3)
    async with running(store, {"long": handler}):
        await asyncio.wait_for(started.wait(), 5)
        change = await store.cancel(job.id, cancelled_result(0))
        assert change.changed
        asked = change.job
        assert asked.status is JobStatus.PROCESSING
        assert asked.cancel_requested
        began = time.monotonic()
        done = await finished(store, job.id)
        took = time.monotonic() - began
    assert done.status is JobStatus.CANCELLED
    assert took < 2.0, f"cancel took {took:.2f}s"
    assert done.result["type"] == "Cancelled"
    assert done.attempts == 1


async def test_manual_retry_of_failed_and_cancelled_jobs(store: PostgresStore) -> None:
    outcomes = iter([RuntimeError("first run fails"), "second run works"])

    def once_bad(payload: dict[str, Any]) -> str:
        value = next(outcomes)
        if isinstance(value, Exception):
            raise value
        return value

    job = await add(store, {"task": "once_bad"}, max_attempts=1)
    async with running(store, {"once_bad": once_bad}) as pool:
        failed = await finished(store, job.id)
        assert failed.status is JobStatus.FAILED
        change = await store.retry(job.id)
        assert change.changed
        queued = change.job
        assert queued.status is JobStatus.QUEUED
        assert queued.attempts == 0
        assert queued.result is None
        pool.notify()
        done = await finished(store, job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.attempts == 1
    assert len(done.errors) == 1, "the earlier attempt's error is kept"
    assert not (await store.retry(job.id)).changed, "a completed job is not retried"


async def test_rescuer_returns_expired_leases(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    again = await add(store, {"task": "x"}, max_attempts=2)
    spent = await add(store, {"task": "x"}, max_attempts=1)
    cancel = await add(store, {"task": "x"}, max_attempts=3)
    claims = await claim(store, limit=3, lease_seconds=0.05, worker_id="gone")
    assert len(claims) == 3
    await store.cancel(cancel.id, cancelled_result(0))
    await asyncio.sleep(0.1)
    moved = await Rescuer(store).rescue_once()
    assert moved == 3
    back = await store.get(again.id)
    assert back.status is JobStatus.QUEUED
    assert back.attempts == 1
    assert back.errors[0]["type"] == "LeaseExpired"
    assert back.errors[0]["worker"] == "gone"
    assert (await store.get(spent.id)).status is JobStatus.FAILED
    assert (await store.get(spent.id)).result["type"] == "LeaseExpired"
    assert (await store.get(cancel.id)).status is JobStatus.CANCELLED
    # The lost worker comes back: its writes change nothing.
    stale = {c.id: c for c in claims}[again.id]
    assert await store.finish([Finish(stale.lease, Completed(raw(1)))]) == [False]
    check = await store.check_leases(LeaseCheckParams([stale.lease], extend_by=30))
    assert check.lost == {again.id}
    assert await Rescuer(store).rescue_once() == 0


async def test_rescue_is_done_by_one_process_at_a_time(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    from jqs.store.postgres import RESCUER_LOCK_KEY

    await add(store, {"task": "x"}, max_attempts=2)
    await claim(store, limit=1, lease_seconds=0.01, worker_id="gone")
    await asyncio.sleep(0.05)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", RESCUER_LOCK_KEY)
        assert await store.rescue(RescueParams()) == [], "another process holds the lock"
    assert len(await store.rescue(RescueParams())) == 1


async def test_lost_lease_interrupts_the_stale_runner(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    started = asyncio.Event()
    finished_runs: list[int] = []

    async def long(payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(5)
        finished_runs.append(1)

    job = await add(store, {"task": "long"}, max_attempts=3)
    async with running(store, {"long": long}, lease_seconds=0.6) as pool:
        await asyncio.wait_for(started.wait(), 5)
        # Someone else took the job over (as the rescuer and another worker would).
        await conn.execute("UPDATE jobs SET lease_token = gen_random_uuid() WHERE id = $1", job.id)

        async def stopped() -> bool:
            return pool.active == 0

        # The next heartbeat (every 0.2 s) finds the lease gone; the handler had 5 s left.
        await eventually(stopped, within=2)
        job_now = await store.get(job.id)
    assert finished_runs == []
    assert job_now.status is JobStatus.PROCESSING, "the new owner's job was left alone"
