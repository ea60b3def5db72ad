from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from jqs.errors import JobNotFound
from jqs.models import JobFilter, JobStatus
from jqs.store import MAX_JOB_ID, Database, JobStore
from jqs.store.queries import q
from tests.support.jobs import add, raw


async def test_insert_and_get(store: JobStore) -> None:
    job = await add(store, {"task": "send_email", "to": "a@b.c"})
    assert job.status is JobStatus.QUEUED
    assert job.result is None
    assert job.task == "send_email"
    assert job.created_at == job.updated_at
    again = await store.get(job.id)
    assert again == job


@pytest.mark.parametrize("job_id", [0, -1, MAX_JOB_ID, 10**6])
async def test_get_unknown_raises_not_found(store: JobStore, job_id: int) -> None:
    with pytest.raises(JobNotFound):
        await store.get(job_id)


async def test_find_is_newest_first_and_filters(store: JobStore) -> None:
    ids = [(await add(store, {"task": t})).id for t in ("a", "b", "a", "c")]
    found = await store.find(JobFilter(), limit=10, offset=0)
    assert [j.id for j in found] == sorted(ids, reverse=True)
    only_a = await store.find(JobFilter(task="a"), limit=10, offset=0)
    assert [j.id for j in only_a] == [ids[2], ids[0]]
    page2 = await store.find(JobFilter(), limit=2, offset=2)
    assert [j.id for j in page2] == [ids[1], ids[0]]
    assert await store.find(JobFilter(status=JobStatus.COMPLETED), limit=10, offset=0) == []


async def test_find_matches_a_filter_over_every_job(
    store: JobStore, conn: asyncpg.Connection
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
                found = await store.find(
                    JobFilter(status=status, task=task), limit=limit, offset=offset
                )
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
        store = db.jobs
        for _ in range(8):  # past the five custom plans PostgreSQL tries on its own
            await add(store, {"task": "t"})
            claimed = await store.claim(["default"], limit=10, lease_seconds=30, worker_id="w")
            assert len(claimed.jobs) == 1
            await store.find(JobFilter(status=JobStatus.PROCESSING), limit=5, offset=0)
        async with db.pool.acquire() as c:
            plans = {
                row["statement"].split("\n", 1)[0]: (row["generic_plans"], row["custom_plans"])
                for row in await c.fetch(
                    "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
                )
            }
    finally:
        await db.stop()
    claim = next(v for k, v in plans.items() if k.startswith("-- Claims across"))
    listing = next(v for k, v in plans.items() if k.startswith("-- Newest first"))
    assert claim == (8, 0)  # planned once, never again per run
    assert listing == (0, 8)  # planned for each filter's values


# Each statement that finds its rows through an index, with arguments to EXPLAIN it by.
_INDEXED_STATEMENTS = {
    "job_claim": "ARRAY['default'], ARRAY[10], ARRAY[NULL::int], 10, 30, 'w', NULL, true, "
    "gen_random_uuid()",
    "job_complete": "1, gen_random_uuid(), '{}'::jsonb",
    "job_complete_many": "ARRAY[1, 2]::bigint[], ARRAY[gen_random_uuid(), gen_random_uuid()], "
    "ARRAY['{}'::jsonb, '{}'::jsonb]",
    "job_fail_attempt": "1, gen_random_uuid(), '{}'::jsonb, true, 1",
    "job_heartbeat_many": "ARRAY[1]::bigint[], ARRAY[gen_random_uuid()], 30",
    "job_cancel_requested_many": "ARRAY[1]::bigint[], ARRAY[gen_random_uuid()]",
    "job_release": "ARRAY[1]::bigint[], ARRAY[gen_random_uuid()]",
    "job_rescue_expired": "100, 1",
    "job_prune": "3600, 100, 2",
    "job_cancel": "1, '{}'::jsonb",
    "job_get": "1",
}


async def test_plans_made_on_a_small_table_still_use_the_indexes(
    dsn: str, tmp_path: Path, conn: asyncpg.Connection
) -> None:
    # A connection plans each statement once, at its first run, and keeps the plan while the
    # table grows. Made on a table of one page, the plans read the table whole (with
    # PostgreSQL's default settings, even the lookup by primary key did) and kept doing so.
    await conn.execute(
        "INSERT INTO jobs (payload, status, finished_at) "
        "SELECT jsonb_build_object('task', 't'), 'completed', now() FROM generate_series(1, 50)"
    )
    await conn.execute("ANALYZE jobs")
    db = Database(url=dsn, data_dir=tmp_path / "unused", pool_min=1, pool_max=1)
    await db.start()
    try:
        async with db.pool.acquire() as c:
            for name, args in _INDEXED_STATEMENTS.items():
                await c.execute(f"PREPARE {name} AS {q(name)}")
                plan = "\n".join(r[0] for r in await c.fetch(f"EXPLAIN EXECUTE {name}({args})"))
                assert "Seq Scan on jobs" not in plan, (name, plan)
    finally:
        await db.stop()


async def test_claim_complete_and_fencing(store: JobStore, conn: asyncpg.Connection) -> None:
    first = await add(store, {"task": "x"})
    second = await add(store, {"task": "y"})
    claimed = (await store.claim(["default"], limit=10, lease_seconds=30, worker_id="w1")).jobs
    assert [c.id for c in claimed] == [first.id, second.id], "FIFO within one priority"
    assert all(c.attempt == 1 for c in claimed)
    again = await store.claim(["default"], limit=10, lease_seconds=30, worker_id="w2")
    assert again.jobs == []

    assert not await store.complete(first.id, uuid.uuid4(), raw({"stale": True}))
    assert await store.complete(first.id, claimed[0].lease_token, raw({"ok": 1}))
    assert not await store.complete(first.id, claimed[0].lease_token, raw({"twice": 1}))
    done = await store.get(first.id)
    assert done.status is JobStatus.COMPLETED
    assert done.result == {"ok": 1}
    assert done.finished_at is not None

    outcome = await store.fail_attempt(
        second.id, claimed[1].lease_token, raw({"error": "x"}), retry=True
    )
    assert outcome is not None
    assert outcome[0] is JobStatus.FAILED, "one attempt allowed: no retry"
    failed = await store.get(second.id)
    assert failed.status is JobStatus.FAILED
    assert failed.errors == [{"error": "x"}]
    assert failed.result == {"error": "x"}


async def test_a_claim_commits_without_waiting_for_the_flush_and_only_itself(
    store: JobStore, conn: asyncpg.Connection
) -> None:
    # job_claim turns synchronous_commit off for its own transaction (see queries.sql); the
    # enqueue and the outcome, on the same pooled connections, must still wait for the disk.
    job = await add(store, {"task": "x"})
    before = await conn.fetchval("SHOW synchronous_commit")
    args = (["default"], [1], [None], 1, 30.0, "w", None, True, uuid.uuid4())
    async with conn.transaction():
        assert [r["id"] for r in await conn.fetch(q("job_claim"), *args)] == [job.id]
        assert await conn.fetchval("SHOW synchronous_commit") == "off"
    assert await conn.fetchval("SHOW synchronous_commit") == before == "on"


async def test_claim_respects_limit_priority_and_run_at(
    store: JobStore, conn: asyncpg.Connection
) -> None:
    low = await add(store, {"task": "low"})
    high = await add(store, {"task": "high"})
    later = await add(store, {"task": "later"})
    await conn.execute("UPDATE jobs SET priority = 5 WHERE id = $1", high.id)
    await conn.execute("UPDATE jobs SET run_at = now() + interval '1 hour' WHERE id = $1", later.id)
    claimed = (await store.claim(["default"], limit=1, lease_seconds=30, worker_id="w")).jobs
    assert [c.id for c in claimed] == [high.id]
    claimed = (await store.claim(["default"], limit=5, lease_seconds=30, worker_id="w")).jobs
    assert [c.id for c in claimed] == [low.id]


async def test_release_returns_jobs_without_spending_an_attempt(store: JobStore) -> None:
    job = await add(store, {"task": "x"})
    [claim] = (await store.claim(["default"], limit=1, lease_seconds=30, worker_id="w")).jobs
    assert await store.release([(claim.id, uuid.uuid4())]) == 0, "a wrong token releases nothing"
    assert await store.release([(claim.id, claim.lease_token)]) == 1
    back = await store.get(job.id)
    assert back.status is JobStatus.QUEUED
    assert back.attempts == 0
    [again] = (await store.claim(["default"], limit=1, lease_seconds=30, worker_id="w")).jobs
    assert again.attempt == 1


async def test_count_by_status(store: JobStore) -> None:
    await add(store, {"task": "x"})
    counts = await store.count_by_status()
    assert counts[JobStatus.QUEUED] == 1
    assert counts[JobStatus.FAILED] == 0
