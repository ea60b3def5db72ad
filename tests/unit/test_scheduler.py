"""The cron scheduler's own loop on the in-memory store and a manual clock."""

from __future__ import annotations

from datetime import UTC, datetime

from jqs.maintenance.scheduler import Scheduler, latest_due
from jqs.port import FindParams
from jqs.tasks.defaults import JobDefaults
from jqs.tasks.registry import TaskRegistry
from jqs.tasks.schedules import CronSchedule
from jqs.testing import ManualClock, MemoryStore

START = datetime(2030, 1, 1, 12, 1, 30, tzinfo=UTC)


def test_latest_due_counts_the_current_instant() -> None:
    assert latest_due("*/5 * * * *", START) == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    exact = datetime(2030, 1, 1, 12, 5, tzinfo=UTC)
    assert latest_due("*/5 * * * *", exact) == exact


async def test_each_time_is_enqueued_once_as_time_passes() -> None:
    clock = ManualClock(START)
    store = MemoryStore(clock)
    schedule = CronSchedule(name="report", expression="*/5 * * * *", payload={"task": "report"})
    scheduler = Scheduler(store, [schedule], JobDefaults(TaskRegistry()), clock=clock)
    await scheduler.start()
    try:
        for _ in range(15 * 6):  # fifteen minutes, in ten-second steps
            await clock.advance(10)
    finally:
        await scheduler.stop()
    jobs = await store.find(FindParams(limit=100))
    assert sorted(job.created_at.strftime("%H:%M") for job in jobs) == ["12:05", "12:10", "12:15"]
    assert all(job.payload == {"task": "report"} for job in jobs)
