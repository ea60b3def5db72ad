"""Scheduling against a real PostgreSQL and real time (the store contract covers the rest)."""

from __future__ import annotations

import asyncio
import time

from jqs.store import PostgresStore
from jqs.tasks.registry import TaskRegistry
from jqs.worker import PoolSettings, WorkerPool
from tests.support.jobs import add


async def test_delayed_job_starts_on_time_not_early(store: PostgresStore) -> None:
    started: list[float] = []
    ran = asyncio.Event()

    async def mark(payload: dict[str, object]) -> None:
        started.append(time.monotonic())
        ran.set()

    registry = TaskRegistry()
    registry.register("mark", mark)
    pool = WorkerPool(store, registry, PoolSettings(concurrency=1, poll_interval=0.5))
    await pool.start()
    try:
        submitted = time.monotonic()
        await add(store, {"task": "mark"}, delay=0.8)
        await asyncio.wait_for(ran.wait(), 5)
    finally:
        await pool.stop(1)
    assert started, "the delayed job never started"
    waited = started[0] - submitted
    assert waited >= 0.8, f"started {0.8 - waited:.3f}s early"
    assert waited < 0.8 + 1.0, f"started {waited - 0.8:.2f}s after its run_at"
