"""jqs.enqueue in the application's own transaction, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

import jqs
from jqs.client import EnqueueError, InvalidJob, enqueue
from jqs.jsonutil import RawJSON, dumps
from jqs.models import EnqueueOptions, NewJob
from jqs.store import PostgresStore

# Columns the database sets on its own for every row, different for any two jobs.
_OWN = {"id", "created_at", "updated_at", "run_at"}


async def _row(conn: asyncpg.Connection, job_id: int) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    assert row is not None
    return {k: v for k, v in dict(row).items() if k not in _OWN}


async def _events(conn: asyncpg.Connection, job_id: int) -> list[str]:
    rows = await conn.fetch("SELECT type FROM job_events WHERE job_id = $1 ORDER BY id", job_id)
    return [row["type"] for row in rows]


async def test_a_committed_job_is_the_row_post_jobs_writes(
    conn: asyncpg.Connection, store: PostgresStore
) -> None:
    payload = {"task": "send", "to": "a@example.com", "n": [1, 2.5, None]}
    options = EnqueueOptions(queue="mail", priority=5, max_attempts=4, timeout=30.0, delay=60)
    [by_store] = await store.insert([NewJob(RawJSON(dumps(payload)), options, "key_x")])
    async with conn.transaction():
        made = await jqs.enqueue(
            conn,
            payload,
            queue="mail",
            priority=5,
            max_attempts=4,
            timeout=30.0,
            delay=60,
            created_by="key_x",
        )
    assert (made.task, made.queue) == ("send", "mail")
    assert await _row(conn, made.id) == await _row(conn, by_store.id)
    assert await _events(conn, made.id) == ["job.enqueued"] == await _events(conn, by_store.id)
    assert made.run_at - made.created_at == timedelta(seconds=60)


async def test_the_job_and_its_notification_exist_only_once_committed(
    conn: asyncpg.Connection, dsn: str
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(dsn)
    try:
        await listener.add_listener("jqs_jobs", lambda *args: heard.put_nowait(args[-1]))
        tx = conn.transaction()
        await tx.start()
        made = await enqueue(conn, {"task": "t"}, queue="q1")
        outside = await listener.fetchval("SELECT count(*) FROM jobs WHERE id = $1", made.id)
        assert outside == 0  # not before the commit
        await asyncio.sleep(0.2)
        assert heard.empty()
        await tx.commit()
        assert await asyncio.wait_for(heard.get(), 10) == "q1"
        assert await listener.fetchval("SELECT count(*) FROM jobs WHERE id = $1", made.id) == 1
    finally:
        await listener.close()


async def test_a_rolled_back_job_leaves_nothing(conn: asyncpg.Connection) -> None:
    tx = conn.transaction()
    await tx.start()
    made = await enqueue(conn, {"task": "t"})
    await tx.rollback()
    assert await conn.fetchval("SELECT count(*) FROM jobs WHERE id = $1", made.id) == 0
    assert await _events(conn, made.id) == []


@pytest.mark.parametrize(
    ("payload", "options", "says"),
    [
        ({"task": "t", "text": "a\x00b"}, {}, "NUL"),
        ({"task": "t", "when": datetime.now(UTC)}, {}, "not JSON"),
        ({"task": "t", "x": float("nan")}, {}, "not JSON"),
        (["not", "an", "object"], {}, "must be a dict"),
        ({"task": "t" * 201}, {}, "at most 200"),
        ({"task": "t"}, {"queue": "no spaces"}, "queue name"),
        ({"task": "t"}, {"priority": 40000}, "priority"),
        ({"task": "t"}, {"max_attempts": 0}, "max_attempts"),
        ({"task": "t"}, {"timeout": 0}, "timeout"),
        ({"task": "t"}, {"delay": -1}, "delay"),
        ({"task": "t"}, {"run_at": datetime(2030, 1, 1)}, "time zone"),
        ({"task": "t"}, {"run_at": datetime.now(UTC), "delay": 1}, "not both"),
    ],
)
async def test_a_bad_job_raises_and_the_transaction_goes_on(
    conn: asyncpg.Connection, payload: Any, options: dict[str, Any], says: str
) -> None:
    async with conn.transaction():
        await conn.execute("CREATE TABLE app_orders (id int)")
        await conn.execute("INSERT INTO app_orders VALUES (1)")
        with pytest.raises(InvalidJob, match=says):
            await enqueue(conn, payload, **options)
        made = await enqueue(conn, {"task": "t"})
    assert await conn.fetchval("SELECT count(*) FROM app_orders") == 1
    assert await conn.fetchval("SELECT count(*) FROM jobs WHERE id = $1", made.id) == 1


async def test_what_the_database_refuses_is_undone_to_a_savepoint(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        """
        CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.payload ->> 'task' = 'refused' THEN RAISE EXCEPTION 'not this one'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse();
        """
    )
    async with conn.transaction():
        await conn.execute("CREATE TABLE app_orders (id int)")
        with pytest.raises(EnqueueError, match="not this one"):
            await enqueue(conn, {"task": "refused"})
        await conn.execute("INSERT INTO app_orders VALUES (1)")  # the transaction goes on
        made = await enqueue(conn, {"task": "fine"})
    assert await conn.fetchval("SELECT count(*) FROM app_orders") == 1
    assert await conn.fetchval("SELECT count(*) FROM jobs WHERE task = 'refused'") == 0
    assert await _events(conn, made.id) == ["job.enqueued"]


async def test_without_the_savepoint_a_refusal_aborts_the_transaction(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        """
        CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'not this one'; END $$;
        CREATE TRIGGER refuse BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse();
        """
    )
    tx = conn.transaction()
    await tx.start()
    with pytest.raises(InvalidJob):  # refused before anything is sent: the transaction goes on
        await enqueue(conn, {"task": "t", "x": "\x00"}, savepoint=False)
    assert await conn.fetchval("SELECT 1") == 1
    with pytest.raises(EnqueueError, match="not this one"):
        await enqueue(conn, {"task": "t"}, savepoint=False)
    with pytest.raises(asyncpg.InFailedSQLTransactionError):
        await conn.fetchval("SELECT 1")
    await tx.rollback()


async def test_outside_a_transaction_the_job_is_committed_at_once(
    conn: asyncpg.Connection, dsn: str
) -> None:
    made = await enqueue(conn, {"task": "t"}, run_at=datetime(2030, 1, 1, tzinfo=UTC))
    other = await asyncpg.connect(dsn)
    try:
        row = await other.fetchrow("SELECT status, run_at FROM jobs WHERE id = $1", made.id)
    finally:
        await other.close()
    assert row is not None
    assert (row["status"], row["run_at"]) == ("queued", datetime(2030, 1, 1, tzinfo=UTC))
