"""PostgresStore beyond the contract: indexes, plans and session settings on PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from pathlib import Path

import asyncpg
import orjson

from jqs.models import JobFilter, JobStatus
from jqs.port import FindParams, LeaseCheckParams
from jqs.store import Database, PostgresStore
from jqs.store.queries import queries
from tests.support.jobs import add, claim


async def test_find_matches_a_filter_over_every_job(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    # Every status and task filter reads its own index (migration 0005); each must give what
    # filtering the whole table would, page by page.
    jobs = [await add(store, {"task": "abc"[i % 3]}) for i in range(40)]
    statuses = list(JobStatus)
    status_of = {job.id: statuses[(i * 7) % len(statuses)] for i, job in enumerate(jobs)}
    await conn.executemany(
        "UPDATE jobs SET status = $2 WHERE id = $1",
        [(job_id, status.value) for job_id, status in status_of.items()],
    )
    task_of = {job.id: job.task for job in jobs}
    for status in [None, *statuses]:
        for task in [None, "a", "b", "nope"]:
            expected = sorted(
                (
                    job_id
                    for job_id in status_of
                    if status in (None, status_of[job_id]) and task in (None, task_of[job_id])
                ),
                reverse=True,
            )
            for limit, offset in [(100, 0), (3, 0), (3, 3), (2, 5)]:
                found = await store.find(FindParams(JobFilter(status, task), limit, offset))
                assert [j.id for j in found] == expected[offset : offset + limit], (
                    status,
                    task,
                    limit,
                    offset,
                )


async def test_hot_statements_keep_one_plan_and_listings_plan_per_value(
    dsn: str, tmp_path: Path
) -> None:
    # One connection, so every run below lands on the same session's prepared statements.
    db = Database(url=dsn, data_dir=tmp_path / "unused", pool_min=1, pool_max=1)
    await db.start()
    try:
        for _ in range(8):  # past the five custom plans PostgreSQL tries on its own
            await add(db.store, {"task": "t"})
            assert len(await claim(db.store, limit=10)) == 1
            await db.store.find(FindParams(JobFilter(status=JobStatus.PROCESSING), limit=5))
        async with db.pool.acquire() as c:
            plans = {
                row["statement"]: (row["generic_plans"], row["custom_plans"])
                for row in await c.fetch(
                    "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
                )
            }
    finally:
        await db.stop()
    assert plans[queries()["job_claim"].sql] == (8, 0)  # planned once, never again per run
    assert plans[queries()["job_list"].sql] == (0, 8)  # planned for each filter's values


async def test_plans_made_on_a_small_table_still_use_the_indexes(
    dsn: str, tmp_path: Path, conn: asyncpg.Connection
) -> None:
    # A connection plans each statement once, at its first run, and keeps the plan while the
    # table grows. Made on a table of one page, the plans read the table whole (with
    # PostgreSQL's default settings, even the lookup by primary key did) and kept doing so.
    # Every statement of queries.sql is checked, so a new one cannot read `jobs` whole
    # without saying so (`-- plan: per-value`).
    await conn.execute(
        "INSERT INTO jobs (payload, status, finished_at) "
        "SELECT jsonb_build_object('task', 't'), 'completed', now() FROM generate_series(1, 50)"
    )
    await conn.execute("ANALYZE jobs")
    db = Database(url=dsn, data_dir=tmp_path / "unused", pool_min=1, pool_max=1)
    await db.start()
    checked = []
    try:
        async with db.pool.acquire() as c:
            for name, query in queries().items():
                if query.per_value or name.startswith("db_") or " jobs" not in query.sql:
                    continue
                await c.execute(f"PREPARE {name} AS {query.sql}")
                nulls = ", ".join(["NULL"] * len(query.params))
                explain = f"EXPLAIN EXECUTE {name}({nulls})" if nulls else f"EXPLAIN EXECUTE {name}"
                plan = "\n".join(r[0] for r in await c.fetch(explain))
                assert "Seq Scan on jobs" not in plan, (name, plan)
                checked.append(name)
    finally:
        await db.stop()
    assert {"job_claim", "job_finish_many", "job_get", "job_rescue_expired"} <= set(checked)


async def test_a_claim_commits_without_waiting_for_the_flush_and_only_itself(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    # job_claim turns synchronous_commit off for its own transaction (see queries.sql); the
    # enqueue and the outcome, on the same pooled connections, must still wait for the disk.
    job = await add(store, {"task": "x"})
    query = queries()["job_claim"]
    args = {
        "queues": ["default"],
        "caps": [1],
        "max_running": [None],
        "limit": 1,
        "lease_seconds": 30.0,
        "worker_id": "w",
        "now": None,
        "tasks": None,
        "skip_limited": True,
        "token": None,
    }
    before = await conn.fetchval("SHOW synchronous_commit")
    async with conn.transaction():
        rows = await conn.fetch(query.sql, *[args[name] for name in query.params])
        assert [r["id"] for r in rows] == [job.id]
        assert await conn.fetchval("SHOW synchronous_commit") == "off"
    assert await conn.fetchval("SHOW synchronous_commit") == before == "on"


async def test_a_listing_leaves_out_a_job_deleted_while_it_is_read(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    noise = base64.b64encode(os.urandom(30_000)).decode()  # read after the first statement
    big = [(await add(store, {"task": "big", "blob": noise})).id for _ in range(2)]
    small = (await add(store, {"task": "small"})).id
    chunks = store.find_text(FindParams(limit=10))
    assert [job.id for job in await anext(chunks)] == [small]
    await conn.execute("DELETE FROM jobs WHERE id = $1", big[1])
    rest = [job async for chunk in chunks for job in chunk]
    assert [job.id for job in rest] == [big[0]]
    assert orjson.loads(rest[0].payload)["blob"] == noise


async def test_extending_leases_never_waits_for_a_row_another_statement_holds(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    # Waiting there could deadlock with the worker's own outcome batch, which locks the
    # same rows in another order.
    for n in range(2):
        await add(store, {"task": f"t{n}"})
    free, locked = await claim(store)
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", locked.id)
        check = await asyncio.wait_for(
            store.check_leases(LeaseCheckParams([free.lease, locked.lease], extend_by=60)),
            timeout=10,
        )
    finally:
        await tx.rollback()
    assert check.lost == frozenset(), "a locked row is skipped, not taken for lost"
    gone = await store.check_leases(
        LeaseCheckParams([free.lease._replace(token=uuid.uuid4())], extend_by=60)
    )
    assert gone.lost == {free.id}
