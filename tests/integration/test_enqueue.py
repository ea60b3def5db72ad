"""jqs.enqueue in the application's own transaction, against a real PostgreSQL: on
asyncpg, and on psycopg's Connection (enqueue_sync) and AsyncConnection."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import psycopg
import pytest

import jqs
from jqs.client import EnqueueError, InvalidJob, enqueue, enqueue_sync, transaction
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


@pytest.mark.parametrize(
    ("accepted", "refused", "says"),
    [
        ({"priority": 1}, {"priority": True}, "priority"),
        ({"max_attempts": 3}, {"max_attempts": 3.0}, "max_attempts"),
        ({"timeout": 1}, {"timeout": True}, "timeout"),
        ({"queue": "q"}, {"queue": ["q"]}, "queue name"),
    ],
)
async def test_options_given_before_are_checked_again_for_their_type(
    conn: asyncpg.Connection, accepted: dict[str, Any], refused: dict[str, Any], says: str
) -> None:
    """Checked options are remembered, and True == 1 == 1.0: the type must count too."""
    async with conn.transaction():
        await enqueue(conn, {"task": "t"}, **accepted)
        with pytest.raises(InvalidJob, match=says):
            await enqueue(conn, {"task": "t"}, **refused)


def test_the_options_remembered_are_bounded() -> None:
    for n in range(transaction._CHECKED_MAX * 3):
        transaction._options("q", 0, None, None, 3, None, f"user-{n}")
    assert 0 < len(transaction._CHECKED) <= transaction._CHECKED_MAX


# A trigger that refuses jobs whose task is "refused".
REFUSE_SOME = """
    CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.payload ->> 'task' = 'refused' THEN RAISE EXCEPTION 'not this one'; END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER refuse BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse();
"""


async def test_what_the_database_refuses_is_undone_and_the_transaction_goes_on(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(REFUSE_SOME)
    async with conn.transaction():
        await conn.execute("CREATE TABLE app_orders (id int)")
        with pytest.raises(EnqueueError, match="not this one") as refused:
            await enqueue(conn, {"task": "refused"})
        assert refused.value.sqlstate == "P0001"  # raise_exception
        await conn.execute("INSERT INTO app_orders VALUES (1)")  # the transaction goes on
        made = await enqueue(conn, {"task": "fine"})
    assert await conn.fetchval("SELECT count(*) FROM app_orders") == 1
    assert await conn.fetchval("SELECT count(*) FROM jobs WHERE task = 'refused'") == 0
    assert await _events(conn, made.id) == ["job.enqueued"]


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


async def test_a_job_refused_after_its_row_was_written_leaves_nothing(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        """
        CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'no events today'; END $$;
        CREATE TRIGGER refuse_event BEFORE INSERT ON job_events
            FOR EACH ROW EXECUTE FUNCTION refuse_event();
        """
    )
    async with conn.transaction():
        with pytest.raises(EnqueueError, match="no events today"):
            await enqueue(conn, {"task": "t"})
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 0  # the row was undone
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 0


async def test_a_statement_timeout_while_enqueuing_is_a_refusal_too(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        """
        CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(5); RETURN NEW; END $$;
        CREATE TRIGGER slow BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION slow();
        """
    )
    async with conn.transaction():
        await conn.execute("CREATE TABLE app_orders (id int)")
        await conn.execute("SET LOCAL statement_timeout = '200ms'")
        with pytest.raises(EnqueueError, match="statement timeout") as refused:
            await enqueue(conn, {"task": "t"})
        assert refused.value.sqlstate == "57014"  # query_canceled
        await conn.execute("INSERT INTO app_orders VALUES (1)")
    assert await conn.fetchval("SELECT count(*) FROM app_orders") == 1
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 0


async def test_a_database_not_migrated_for_enqueue_says_so(conn: asyncpg.Connection) -> None:
    await conn.execute("DROP FUNCTION jqs_enqueue")
    with pytest.raises(EnqueueError, match="jqs migrate") as refused:
        await enqueue(conn, {"task": "t"})
    assert refused.value.sqlstate == "42883"


async def test_the_connection_says_which_enqueue_to_call(
    conn: asyncpg.Connection, dsn: str
) -> None:
    with psycopg.connect(dsn) as sync_conn, pytest.raises(TypeError, match="enqueue_sync"):
        await enqueue(sync_conn, {"task": "t"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"await jqs\.enqueue"):
        enqueue_sync(conn, {"task": "t"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not object"):
        await enqueue(object(), {"task": "t"})  # type: ignore[arg-type]
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 0


async def test_every_driver_writes_the_row_post_jobs_writes(
    conn: asyncpg.Connection, store: PostgresStore, dsn: str
) -> None:
    payload = {"task": "send", "to": "a@example.com", "n": [1, 2.5, None], "%s": "%(x)s"}
    options = EnqueueOptions(queue="mail", priority=-5, max_attempts=4, timeout=1.5, delay=60)
    [by_store] = await store.insert([NewJob(RawJSON(dumps(payload)), options, "key_x")])
    given: dict[str, Any] = {
        "queue": "mail",
        "priority": -5,
        "max_attempts": 4,
        "timeout": 1.5,
        "delay": 60,
        "created_by": "key_x",
    }
    with psycopg.connect(dsn) as sync_conn, sync_conn.transaction():
        by_sync = enqueue_sync(sync_conn, payload, **given)
    async with (
        await psycopg.AsyncConnection.connect(dsn) as async_conn,
        async_conn.transaction(),
    ):
        by_async = await enqueue(async_conn, payload, **given)
    expected = await _row(conn, by_store.id)
    for made in (by_sync, by_async):
        assert (made.task, made.queue) == ("send", "mail")
        assert made.run_at - made.created_at == timedelta(seconds=60)
        assert await _row(conn, made.id) == expected
        assert await _events(conn, made.id) == ["job.enqueued"]


def _count(conn: psycopg.Connection[Any], sql: str, *args: Any) -> int:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])


def test_psycopg_a_committed_job_exists_and_wakes_the_workers(dsn: str) -> None:
    with (
        psycopg.connect(dsn, autocommit=True) as listener,
        psycopg.connect(dsn) as conn,
    ):
        listener.execute("LISTEN jqs_jobs")
        with conn.transaction():
            made = enqueue_sync(conn, {"task": "t"}, queue="q1")
            assert _count(listener, "SELECT count(*) FROM jobs WHERE id = %s", made.id) == 0
            assert list(listener.notifies(timeout=0.2, stop_after=1)) == []  # not before commit
        heard = list(listener.notifies(timeout=10, stop_after=1))
        assert [note.payload for note in heard] == ["q1"]
        assert _count(listener, "SELECT count(*) FROM jobs WHERE id = %s", made.id) == 1


def test_psycopg_a_rolled_back_job_leaves_nothing(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        with conn.transaction(force_rollback=True):
            made = enqueue_sync(conn, {"task": "t"})
        assert _count(conn, "SELECT count(*) FROM jobs WHERE id = %s", made.id) == 0
        assert _count(conn, "SELECT count(*) FROM job_events WHERE job_id = %s", made.id) == 0


def test_psycopg_a_refused_job_leaves_the_transaction_usable(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(REFUSE_SOME)
        with conn.transaction():
            conn.execute("CREATE TABLE app_orders (id int)")
            with pytest.raises(InvalidJob, match="NUL"):
                enqueue_sync(conn, {"task": "t", "x": "\x00"})
            with pytest.raises(EnqueueError, match="not this one") as refused:
                enqueue_sync(conn, {"task": "refused"})
            assert refused.value.sqlstate == "P0001"
            conn.execute("INSERT INTO app_orders VALUES (1)")  # the transaction goes on
            made = enqueue_sync(conn, {"task": "fine"})
        assert _count(conn, "SELECT count(*) FROM app_orders") == 1
        assert _count(conn, "SELECT count(*) FROM jobs WHERE task = 'refused'") == 0
        assert _count(conn, "SELECT count(*) FROM jobs WHERE id = %s", made.id) == 1


async def _async_count(conn: psycopg.AsyncConnection[Any], sql: str, *args: Any) -> int:
    row = await (await conn.execute(sql, args)).fetchone()
    assert row is not None
    return int(row[0])


async def test_psycopg_async_a_committed_job_exists_and_wakes_the_workers(dsn: str) -> None:
    async with (
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as listener,
        await psycopg.AsyncConnection.connect(dsn) as conn,
    ):
        await listener.execute("LISTEN jqs_jobs")
        async with conn.transaction():
            made = await enqueue(conn, {"task": "t"}, queue="q2")
            found = await _async_count(listener, "SELECT count(*) FROM jobs WHERE id = %s", made.id)
            assert found == 0
            assert [n async for n in listener.notifies(timeout=0.2, stop_after=1)] == []
        heard = [n.payload async for n in listener.notifies(timeout=10, stop_after=1)]
        assert heard == ["q2"]
        found = await _async_count(listener, "SELECT count(*) FROM jobs WHERE id = %s", made.id)
        assert found == 1


async def test_psycopg_async_a_rolled_back_job_leaves_nothing(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        async with conn.transaction(force_rollback=True):
            made = await enqueue(conn, {"task": "t"})
        assert await _async_count(conn, "SELECT count(*) FROM jobs WHERE id = %s", made.id) == 0


async def test_psycopg_async_a_refused_job_leaves_the_transaction_usable(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(REFUSE_SOME)
        async with conn.transaction():
            await conn.execute("CREATE TABLE app_orders (id int)")
            with pytest.raises(InvalidJob, match="queue name"):
                await enqueue(conn, {"task": "t"}, queue="no spaces")
            with pytest.raises(EnqueueError, match="not this one"):
                await enqueue(conn, {"task": "refused"})
            await conn.execute("INSERT INTO app_orders VALUES (1)")
            made = await enqueue(conn, {"task": "fine"})
        assert await _async_count(conn, "SELECT count(*) FROM app_orders") == 1
        assert await _async_count(conn, "SELECT count(*) FROM jobs WHERE id = %s", made.id) == 1
