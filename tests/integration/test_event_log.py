"""The event log on PostgreSQL: a reader never passes an event that may still commit.

Event ids come from a sequence, so they are not in commit order. These tests hold a
transaction open on a connection of their own, as a slow writer would, and read the log
through the store meanwhile.
"""

from __future__ import annotations

import asyncpg

from jqs.models import EventType, JobEvent
from jqs.port import EventRead
from jqs.store import PostgresStore
from tests.support.jobs import add
from tests.support.pg import with_database


async def read_all(store: PostgresStore, page: EventRead) -> tuple[list[JobEvent], bool]:
    got = await store.events_read(page)
    return got.events, got.pending


async def test_a_reader_waits_for_an_older_transaction_and_then_misses_nothing(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    start = await store.events_now()
    slow = await add(store, {"task": "slow"})
    tx = conn.transaction()
    await tx.start()
    try:
        # The slow writer takes its transaction id first...
        await conn.fetchval("SELECT pg_current_xact_id()")
        # ...then another job's event commits, with a higher xid and a lower event id...
        fast = await add(store, {"task": "fast"})
        # ...and only then does the slow writer append its event (a higher id).
        await conn.execute(
            "INSERT INTO job_events (job_id, type) VALUES ($1, 'job.progress')", slow.id
        )
        events, pending = await read_all(store, EventRead(start))
        assert [e.job_id for e in events] == [slow.id], "only the enqueue below the horizon"
        assert pending, "the fast job's event is committed but above the horizon"
        after_first = events[-1].cursor
    finally:
        await tx.commit()
    events, pending = await read_all(store, EventRead(after_first))
    assert [(e.job_id, e.type) for e in events] == [
        (slow.id, EventType.PROGRESS),
        (fast.id, EventType.ENQUEUED),
    ]
    assert events[0].id > events[1].id, "read in commit-safe order, not id order"
    assert not pending
    assert (await store.events_read(EventRead(events[-1].cursor))).events == []


async def test_a_rolled_back_event_is_never_read(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    start = await store.events_now()
    job = await add(store, {"task": "x"})
    tx = conn.transaction()
    await tx.start()
    await conn.execute("INSERT INTO job_events (job_id, type) VALUES ($1, 'job.progress')", job.id)
    await tx.rollback()
    events, pending = await read_all(store, EventRead(start))
    assert [e.type for e in events] == [EventType.ENQUEUED]
    assert not pending


async def test_a_long_transaction_in_another_database_holds_nothing_up(
    store: PostgresStore, dsn: str
) -> None:
    other = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        tx = other.transaction()
        await tx.start()
        await other.fetchval("SELECT pg_current_xact_id()")  # a writer, holding its xid
        start = await store.events_now()
        job = await add(store, {"task": "x"})
        events, pending = await read_all(store, EventRead(start))
        assert [(e.job_id, e.type) for e in events] == [(job.id, EventType.ENQUEUED)]
        assert not pending
        await tx.rollback()
    finally:
        await other.close()


async def test_writers_that_took_their_xids_after_the_latest_to_end_hold_the_log_too(
    store: PostgresStore, conn: asyncpg.Connection, dsn: str
) -> None:
    """A snapshot's xmax is one past the latest transaction to have ended; writers that
    took their xids after that one, still running, lie above it. The horizon stays at the
    oldest writer all the same. (Should another session of the server end a transaction
    with a higher xid before the read, no writer lies above xmax: the test then passes
    without putting that case to the proof.)"""
    start = await store.events_now()
    slow = await add(store, {"task": "slow"})
    later = [await asyncpg.connect(dsn) for _ in range(2)]
    tx = conn.transaction()
    await tx.start()
    try:
        slow_xid = int(await conn.fetchval("SELECT pg_current_xact_id()::text"))
        fast = await add(store, {"task": "fast"})  # commits above the slow writer
        for other in later:  # two more writers, still running, above the latest to end
            await other.execute("BEGIN")
            await other.fetchval("SELECT pg_current_xact_id()")
        page = await store.events_read(EventRead(start))
        assert 0 < page.horizon <= slow_xid, page.horizon
        assert [e.job_id for e in page.events] == [slow.id], "nothing above the slow writer"
        assert page.pending
        await conn.execute(
            "INSERT INTO job_events (job_id, type) VALUES ($1, 'job.progress')", slow.id
        )
    finally:
        await tx.commit()
        for other in later:
            await other.close()
    events = (await store.events_read(EventRead(page.events[-1].cursor))).events
    assert [(e.job_id, e.type) for e in events] == [
        (slow.id, EventType.PROGRESS),
        (fast.id, EventType.ENQUEUED),
    ]
