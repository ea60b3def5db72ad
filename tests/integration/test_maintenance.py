"""Retention, cron schedules and LISTEN/NOTIFY wake-up, in-process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from jqs.maintenance.pruner import Pruner
from jqs.maintenance.scheduler import Scheduler
from jqs.models import JobStatus, NewJob
from jqs.port import PruneParams, ScheduleFire
from jqs.store import Database, PostgresStore
from jqs.store.notify import Listener, Notifier
from jqs.tasks.defaults import JobDefaults
from jqs.tasks.registry import TaskRegistry
from jqs.tasks.schedules import CronSchedule
from jqs.testing import ManualClock
from jqs.worker import PoolSettings, WorkerPool
from tests.support.jobs import add, raw
from tests.support.waiting import eventually


async def test_pruner_deletes_old_finished_jobs_in_bounded_batches(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    old_ids = [(await add(store, {"task": "old"})).id for _ in range(25)]
    recent = await add(store, {"task": "recent"})
    queued_old = await add(store, {"task": "waiting"})
    await conn.execute(
        "UPDATE jobs SET status = 'completed', finished_at = now() - interval '8 days' "
        "WHERE id = ANY($1)",
        old_ids,
    )
    await conn.execute(
        "UPDATE jobs SET status = 'failed', finished_at = now() - interval '1 day' WHERE id = $1",
        recent.id,
    )
    await conn.execute(
        "UPDATE jobs SET created_at = now() - interval '30 days' WHERE id = $1", queued_old.id
    )
    pruner = Pruner(store, retention=7 * 86400, batch=10, max_batches=2)
    assert await pruner.prune_once() == 20, "a round is bounded"
    assert await pruner.prune_once() == 5
    assert await pruner.prune_once() == 0
    left = {r["id"] for r in await conn.fetch("SELECT id FROM jobs")}
    assert left == {recent.id, queued_old.id}


async def test_prune_is_one_process_at_a_time(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    from jqs.store.postgres import PRUNER_LOCK_KEY

    job = await add(store, {"task": "old"})
    await conn.execute(
        "UPDATE jobs SET status = 'completed', finished_at = now() - interval '1 hour' "
        "WHERE id = $1",
        job.id,
    )
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PRUNER_LOCK_KEY)
        assert await store.prune(PruneParams(60)) == 0
    assert await store.prune(PruneParams(60)) == 1


def _scheduler(database: Database, clock: datetime, expression: str = "*/5 * * * *") -> Scheduler:
    schedule = CronSchedule(name="report", expression=expression, payload={"task": "report"})
    return Scheduler(
        database.store, [schedule], JobDefaults(TaskRegistry()), clock=ManualClock(clock)
    )


async def cron_jobs(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT idempotency_key FROM jobs WHERE idempotency_key LIKE 'cron:%' ORDER BY id"
    )
    return [r["idempotency_key"] for r in rows]


async def test_three_schedulers_enqueue_each_time_once(
    database: Database, conn: asyncpg.Connection
) -> None:
    start = datetime(2030, 1, 1, 12, 1, tzinfo=UTC)
    schedulers = [_scheduler(database, start) for _ in range(3)]
    for scheduler in schedulers:
        await scheduler.register()
    for minutes in (0, 2, 4, 5, 6, 9, 10, 12, 15):
        now = start + timedelta(minutes=minutes)
        await asyncio.gather(*(s.tick(now) for s in schedulers))
    assert await cron_jobs(conn) == [
        f"cron:report:2030-01-01T12:{m:02d}:00+00:00" for m in (5, 10, 15)
    ]
    payloads = await conn.fetch("SELECT payload FROM jobs")
    assert all(p["payload"] == '{"task": "report"}' for p in payloads)


async def test_missed_times_run_once_and_restarts_do_not_repeat(
    database: Database, conn: asyncpg.Connection
) -> None:
    start = datetime(2030, 1, 1, 12, 1, tzinfo=UTC)
    first = _scheduler(database, start)
    await first.register()
    await first.tick(start + timedelta(minutes=6))  # fires 12:05
    # Everything is down from 12:07 to 12:33: 12:10 ... 12:30 are missed.
    back = start + timedelta(minutes=32)
    second = _scheduler(database, back)
    await second.register()
    await second.tick(back)
    await second.tick(back + timedelta(seconds=30))
    assert await cron_jobs(conn) == [
        "cron:report:2030-01-01T12:05:00+00:00",
        "cron:report:2030-01-01T12:30:00+00:00",
    ]


async def test_a_new_schedule_does_not_fire_for_a_time_before_it_existed(
    database: Database, conn: asyncpg.Connection
) -> None:
    start = datetime(2030, 1, 1, 12, 7, tzinfo=UTC)
    scheduler = _scheduler(database, start)
    await scheduler.tick(start)
    assert await cron_jobs(conn) == []
    await scheduler.tick(start + timedelta(minutes=3))
    assert await cron_jobs(conn) == ["cron:report:2030-01-01T12:10:00+00:00"]


async def test_concurrent_fires_of_one_time_enqueue_once(store: PostgresStore) -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    await store.schedule_register("s", "* * * * *", at - timedelta(minutes=1))
    fire = ScheduleFire("s", at, NewJob(raw({"task": "t"})))
    results = await asyncio.gather(*(store.schedule_fire(fire) for _ in range(10)))
    assert len([r for r in results if r is not None]) == 1


async def test_notify_wakes_a_worker_in_another_process_quickly(
    database: Database, store: PostgresStore, dsn: str
) -> None:
    ran = asyncio.Event()

    async def mark(payload: dict[str, Any]) -> None:
        ran.set()

    registry = TaskRegistry()
    registry.register("mark", mark)
    # A poll interval far beyond the test: only the notification can start the job.
    pool = WorkerPool(store, registry, PoolSettings(concurrency=1, poll_interval=60))
    listener = Listener(dsn, pool.notify)
    notifier = Notifier(database.pool)
    await listener.start()
    await notifier.start()
    await pool.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), 5)
        await asyncio.sleep(0.1)  # the pool's first (empty) claim
        await add(store, {"task": "mark"})
        notifier.touch("default")
        await asyncio.wait_for(ran.wait(), 5)
    finally:
        await pool.stop(1)
        await notifier.stop()
        await listener.stop()


async def test_listener_drops_its_own_process_echo(
    database: Database, conn: asyncpg.Connection, dsn: str
) -> None:
    heard: list[str | None] = []
    listener = Listener(dsn, heard.append, origin="me")
    ours, theirs = Notifier(database.pool, origin="me"), Notifier(database.pool, origin="them")
    await listener.start()
    for notifier in (ours, theirs):
        await notifier.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), 5)
        ours.touch("mail")  # this process woke its own pool when it enqueued
        theirs.touch("default")
        # A sender that names no origin (an older version, or SQL by hand).
        await conn.execute("SELECT pg_notify('jqs_jobs', 'reports')")

        async def heard_others() -> bool:
            return "default" in heard and "reports" in heard

        await eventually(heard_others, within=5)
        await asyncio.sleep(0.1)
        assert sorted(q for q in heard if q) == ["default", "reports"]
    finally:
        for notifier in (ours, theirs):
            await notifier.stop()
        await listener.stop()


async def test_notifier_is_silent_while_no_other_process_listens(
    database: Database, dsn: str
) -> None:
    # A plain LISTEN hears every notification without counting as a JQS listener.
    spy = await asyncpg.connect(dsn)
    heard: list[str] = []
    await spy.add_listener("jqs_jobs", lambda *args: heard.append(str(args[3])))
    own = Listener(dsn, lambda queue: None)
    notifier = Notifier(database.pool, own_listener=own, recheck_seconds=0.2)
    other = Listener(dsn, lambda queue: None)  # a worker in another process
    await own.start()
    await notifier.start()
    try:
        await asyncio.wait_for(own.connected.wait(), 5)
        notifier.touch("alone")
        await asyncio.sleep(0.5)
        assert heard == []  # only this process listens: its pool was woken directly
        await other.start()
        await asyncio.wait_for(other.connected.wait(), 5)
        await asyncio.sleep(0.3)  # past the notifier's next look

        async def told() -> bool:
            return any(h.startswith("shared,") for h in heard)

        notifier.touch("shared")
        await eventually(told, within=5)
    finally:
        await other.stop()
        await notifier.stop()
        await own.stop()
        await spy.close()


async def test_listener_reconnects_and_asks_for_a_recheck(
    dsn: str, conn: asyncpg.Connection
) -> None:
    heard: list[str | None] = []
    listener = Listener(dsn, heard.append, check_interval=0.1)
    await listener.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), 5)
        assert heard == [None]  # what was sent before it listened is unknown
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name LIKE 'jqs%' AND pid <> pg_backend_pid()"
        )

        async def rechecked() -> bool:
            return heard.count(None) == 2

        await eventually(rechecked, within=10)
        await eventually(lambda: _connected(listener), within=10)
        await conn.execute("SELECT pg_notify('jqs_jobs', 'mail,default')")

        async def heard_both() -> bool:
            return "mail" in heard and "default" in heard

        await eventually(heard_both, within=5)
    finally:
        await listener.stop()


async def test_listener_keeps_trying_while_no_server_is_a_primary(dsn: str) -> None:
    # During a failover, every host a multi-host URL names may be a standby for a while:
    # asyncpg then raises an InternalClientError, not a connection error. The listener
    # goes on trying in its own loop, as it does for a server that is down.
    standby_only = dsn + ("&" if "?" in dsn else "?") + "target_session_attrs=standby"
    listener = Listener(standby_only, lambda queue: None)
    await listener.start()
    try:
        await asyncio.sleep(1.0)  # a few attempts: 0.1 s, then 0.2 s, then 0.4 s apart
        assert not listener.connected.is_set()
        assert listener.restarts == 0, "the failure was expected, not a crash of the loop"
    finally:
        await listener.stop()


async def _connected(listener: Listener) -> bool:
    return listener.connected.is_set()


async def test_job_status_enum_is_closed() -> None:
    assert {s.value for s in JobStatus} == {
        "queued",
        "processing",
        "completed",
        "failed",
        "cancelled",
    }
