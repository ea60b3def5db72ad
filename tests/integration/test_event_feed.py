"""The event feed on PostgreSQL: a transaction left open holds the log back, not waiters."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg

from jqs.events import EventFeed, EventFilter, FeedSettings
from jqs.outcome import Completed
from jqs.port import Finish
from jqs.store import Database
from jqs.store.notify import (
    EVENTS_CHANNEL,
    EVENTS_LISTENER_APP,
    Listener,
    Notifier,
    ended_name,
    hear_events,
)
from jqs.testing import ManualClock
from tests.support.jobs import add, claim, raw


@contextlib.asynccontextmanager
async def log_held(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """A transaction left open on `conn` for the block: it takes an xid, so the log's
    horizon stays below whatever is written meanwhile."""
    tx = conn.transaction()
    await tx.start()
    await conn.fetchval("SELECT pg_current_xact_id()")
    try:
        yield
    finally:
        await tx.rollback()


async def test_an_open_transaction_holds_streams_back_but_not_waiters(
    database: Database, conn: asyncpg.Connection
) -> None:
    store = database.store
    feed = EventFeed(store, FeedSettings(poll_interval=0.2))
    store.on_events = feed.wake
    job = await add(store, {"task": "t"})
    async with feed.waiting(job.id) as waiter, feed.subscribe(EventFilter()) as stream:
        async with log_held(conn):
            [claimed] = await claim(store, limit=1)
            await store.finish([Finish(claimed.lease, Completed(raw(1)))])
            began = time.monotonic()
            assert await waiter.wait(feed.clock, 10)
            took = time.monotonic() - began
            assert took < 5, f"the waiter took {took:.1f}s"
            held = await stream.take(feed.clock, 0.5)
            assert held == [], "events above the horizon are not streamed yet"
        events = []
        for _ in range(20):
            events += await stream.take(feed.clock, 1)
            if len(events) >= 2:
                break
        assert [e.type.value for e in events] == ["job.started", "job.completed"]
    await feed.stop()
    await asyncio.sleep(0)


async def test_a_waiter_is_answered_as_its_end_commits_while_the_log_is_held(
    database: Database, conn: asyncpg.Connection
) -> None:
    store = database.store
    clock = ManualClock()  # stands still: no backoff of the feed's ever runs out
    feed = EventFeed(store, clock=clock)
    store.on_events = feed.wake
    store.on_ended = feed.ended
    job = await add(store, {"task": "t"})
    async with feed.waiting(job.id) as waiter, log_held(conn):
        [claimed] = await claim(store, limit=1)
        await store.finish([Finish(claimed.lease, Completed(raw(1)))])
        assert await asyncio.wait_for(waiter.wait(clock, 30), 5)
        assert (await store.get(job.id)).status.value == "completed"
    await feed.stop()


async def test_another_process_hears_which_job_ended_while_the_log_is_held(
    database: Database, conn: asyncpg.Connection, dsn: str
) -> None:
    """The store writes the end in one process; the waiter of another hears of it in the
    notification on the events channel."""
    store = database.store
    notifier = Notifier(database.pool, channel=EVENTS_CHANNEL, application=EVENTS_LISTENER_APP)
    store.on_events = lambda: notifier.touch("log")
    store.on_ended = lambda job_ids: notifier.mention(ended_name(j) for j in job_ids)
    clock = ManualClock()
    feed = EventFeed(store, clock=clock)  # the other process's: no recheck is due
    listener = Listener(
        dsn,
        hear_events(feed.wake, feed.ended, feed.recheck),
        channel=EVENTS_CHANNEL,
        application=EVENTS_LISTENER_APP,
    )
    await listener.start()
    await notifier.start()
    try:
        async with log_held(conn):
            await asyncio.wait_for(listener.connected.wait(), 5)
            job = await add(store, {"task": "t"})
            async with feed.waiting(job.id) as waiter:
                [claimed] = await claim(store, limit=1)
                await store.finish([Finish(claimed.lease, Completed(raw(1)))])
                assert await asyncio.wait_for(waiter.wait(clock, 30), 5)
    finally:
        await feed.stop()
        await notifier.stop()
        await listener.stop()
