"""The event feed on PostgreSQL: a transaction left open holds the log back, not waiters."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from jqs.events import EventFeed, EventFilter, FeedSettings
from jqs.outcome import Completed
from jqs.store import Database
from jqs.store.port import Finish
from tests.support.jobs import add, claim, raw


async def test_an_open_transaction_holds_streams_back_but_not_waiters(
    database: Database, conn: asyncpg.Connection
) -> None:
    store = database.store
    feed = EventFeed(store, FeedSettings(poll_interval=0.2))
    store.on_events = feed.wake
    job = await add(store, {"task": "t"})
    async with feed.waiting(job.id) as waiter, feed.subscribe(EventFilter()) as stream:
        tx = conn.transaction()
        await tx.start()
        await conn.fetchval("SELECT pg_current_xact_id()")  # takes an xid: the horizon stays
        try:
            [claimed] = await claim(store, limit=1)
            await store.finish([Finish(claimed.lease, Completed(raw(1)))])
            began = time.monotonic()
            assert await waiter.wait(feed.clock, 10)
            took = time.monotonic() - began
            assert took < 5, f"the waiter took {took:.1f}s"
            held = await stream.take(feed.clock, 0.5)
            assert held == [], "events above the horizon are not streamed yet"
        finally:
            await tx.rollback()
        events = []
        for _ in range(20):
            events += await stream.take(feed.clock, 1)
            if len(events) >= 2:
                break
        assert [e.type.value for e in events] == ["job.started", "job.completed"]
    await feed.stop()
    await asyncio.sleep(0)
