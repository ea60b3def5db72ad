"""Raw asyncpg baselines: the least a PostgreSQL queue can do, on JQS's own table.

- `drain`: claim 100 jobs with FOR UPDATE SKIP LOCKED, mark them completed with a result,
  repeat; finished rows are kept (UPDATE, not DELETE), as JQS keeps them. Claims commit
  without waiting for the WAL flush and completions wait for it, as JQS's do.
- `insert_batches`: the same rows a batch POST would create, with one unnest INSERT each.
- `latency`: a producer inserts one job per transaction and NOTIFYs; a LISTENing consumer
  claims at once. Commit-to-start latency is measured the way every system is measured.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import orjson

from bench.pacing import paced

# Like JQS's claim, it commits without waiting for its WAL flush (job_claim in
# jqs/store/queries.sql): the baseline keeps the same durability, so a ratio shows JQS's
# own cost, not a difference in what is waited for.
CLAIM = """
WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)),
picked AS (
    SELECT id FROM jobs WHERE status = 'queued' AND queue = 'default' AND run_at <= now()
    ORDER BY priority DESC, run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j SET status = 'processing', attempts = j.attempts + 1, started_at = now(),
       updated_at = now()
FROM picked, relaxed WHERE j.id = picked.id RETURNING j.id
"""
COMPLETE = """
UPDATE jobs SET status = 'completed', result = '{"ok": true}'::jsonb, finished_at = now(),
       updated_at = now()
WHERE id = ANY($1::bigint[])
"""


async def drain(dsn: str, batch: int = 100) -> None:
    """Claim and complete until nothing is queued."""
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            ids = [r["id"] for r in await conn.fetch(CLAIM, batch)]
            if not ids:
                return
            await conn.execute(COMPLETE, ids)
    finally:
        await conn.close()


async def insert_batches(dsn: str, payloads: list[bytes], batches: int, concurrency: int) -> float:
    """Insert `batches` batches of `payloads` with unnest; returns rows per second."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    texts = [p.decode() for p in payloads]
    todo = list(range(batches))

    async def one_client() -> None:
        while todo:
            todo.pop()
            await pool.execute(
                "INSERT INTO jobs (payload) SELECT x::jsonb FROM unnest($1::text[]) AS x", texts
            )

    began = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    took = time.perf_counter() - began
    await pool.close()
    return batches * len(payloads) / took


async def latency(dsn: str, rate: float, jobs: int) -> list[float]:
    """Commit-to-start latencies (ms) of `jobs` jobs enqueued open-loop at `rate` per second."""
    consumer = await asyncpg.connect(dsn)
    producers = await asyncpg.create_pool(dsn, min_size=4, max_size=4)
    commits: dict[int, float] = {}
    starts: dict[int, float] = {}
    wake = asyncio.Event()
    await consumer.add_listener("raw_jobs", lambda *_: wake.set())

    async def consume() -> None:
        while len(starts) < jobs:
            await wake.wait()
            wake.clear()
            while True:
                ids = [r["id"] for r in await consumer.fetch(CLAIM, 100)]
                if not ids:
                    break
                now = time.time()
                for job_id in ids:
                    starts[job_id] = now
                await consumer.execute(COMPLETE, ids)

    async def produce_one(n: int) -> None:
        async with producers.acquire() as producer, producer.transaction():
            job_id = await producer.fetchval(
                "INSERT INTO jobs (payload) VALUES ($1::jsonb) RETURNING id",
                orjson.dumps({"task": "noop", "n": n}).decode(),
            )
            await producer.execute("NOTIFY raw_jobs")
        commits[job_id] = time.time()

    consumer_task = asyncio.create_task(consume())
    await paced(jobs, rate, produce_one)
    await asyncio.wait_for(consumer_task, 30)
    await consumer.close()
    await producers.close()
    return [(starts[i] - commits[i]) * 1000 for i in commits]


async def consume_until(dsn: str, stop: asyncio.Event, batch: int = 100) -> None:
    """Claim and complete whatever arrives until `stop` is set (the end-to-end baseline)."""
    conn = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            ids = [r["id"] for r in await conn.fetch(CLAIM, batch)]
            if ids:
                await conn.execute(COMPLETE, ids)
            else:
                await asyncio.sleep(0.001)
    finally:
        await conn.close()
