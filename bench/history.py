"""Does a long history slow the queue down? Drain with and without 1,000,000 finished jobs.

The speed issue asks that with a million finished jobs in the table the claim path is not
measurably slower. Both drains run the same `jqs worker` on the same number of queued jobs;
one database holds nothing else, the other a million completed jobs (vacuumed and analyzed,
as autovacuum would leave them). The plans of the claim and of the batched completion on the
big table are kept for the report.
"""

from __future__ import annotations

import statistics
import time
import uuid

import asyncpg
import orjson

from bench.scenarios import Context, Row, _wait_done, jqs
from jqs.store.queries import q

HISTORY = 1_000_000
QUEUED = 30_000
ROUNDS = 2


async def _add_history(dsn: str, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            INSERT INTO jobs (payload, status, result, attempts, created_at, updated_at,
                              started_at, finished_at)
            SELECT $1::jsonb, 'completed', 'null'::jsonb, 1, t, t, t, t
            FROM (SELECT now() - make_interval(secs => g) AS t
                  FROM generate_series(1, $2) AS g) AS s
            """,
            orjson.dumps({"task": "noop"}).decode(),
            n,
        )
        await conn.execute("VACUUM ANALYZE jobs")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _queue(dsn: str, n: int) -> int:
    """Add n queued jobs; returns the id before the first of them."""
    conn = await asyncpg.connect(dsn)
    try:
        before = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM jobs"))
        await conn.execute(
            "INSERT INTO jobs (payload) SELECT $1::jsonb FROM generate_series(1, $2)",
            orjson.dumps({"task": "noop"}).decode(),
            n,
        )
        await conn.execute("ANALYZE jobs")
        return before
    finally:
        await conn.close()


async def _drain(ctx: Context, dsn: str, n: int, name: str) -> float:
    """jobs/s of one `jqs worker` draining n newly queued jobs."""
    after = await _queue(dsn, n)
    proc = jqs(
        ["worker"],
        {"DATABASE_URL": dsn, "JQS_WORKER_CONCURRENCY": "100", "JQS_LOG_LEVEL": "warning"},
        ctx.log(name),
    )
    try:
        await _wait_done(dsn, n, 600, proc, after=after)
    finally:
        proc.stop()
    conn = await asyncpg.connect(dsn)
    try:
        span = await conn.fetchval(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM jobs WHERE id > $1",
            after,
        )
    finally:
        await conn.close()
    return n / float(span)


async def _plans(dsn: str) -> dict[str, str]:
    """EXPLAIN ANALYZE of one claim of 100 and of completing them, rolled back."""
    await _queue(dsn, 1_000)
    conn = await asyncpg.connect(dsn)
    plans: dict[str, str] = {}
    try:
        tx = conn.transaction()
        await tx.start()
        try:
            token = uuid.uuid4()
            args = (["default"], [100], [None], 100, 30.0, "bench", None, True, token)
            rows = await conn.fetch(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + q("job_claim"), *args
            )
            plans["claim"] = "\n".join(r[0] for r in rows)
            ids = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 100"
                )
            ]
            await conn.execute(
                "UPDATE jobs SET status = 'processing', lease_token = $2 WHERE id = ANY($1)",
                ids,
                token,
            )
            rows = await conn.fetch(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + q("job_complete_many"),
                ids,
                [token] * len(ids),
                ["null"] * len(ids),
            )
            plans["complete"] = "\n".join(r[0] for r in rows)
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    return plans


async def history(ctx: Context) -> None:
    """Drain speed on an empty table vs one holding a million finished jobs."""
    history_n, queued = (100_000, 10_000) if ctx.quick else (HISTORY, QUEUED)
    big = await ctx.server.fresh()
    began = time.monotonic()
    await _add_history(big, history_n)
    print(f"   {history_n:,} finished jobs written in {time.monotonic() - began:.0f}s", flush=True)
    empty_rates, big_rates = [], []
    for round_no in range(ROUNDS):
        empty_rates.append(await _drain(ctx, await ctx.server.fresh(), queued, "history_empty"))
        big_rates.append(await _drain(ctx, big, queued, f"history_big_{round_no}"))
    ctx.extra["history_plans"] = await _plans(big)
    ctx.extra["history_rates"] = {"empty": empty_rates, "big": big_rates}
    ctx.rows.append(
        Row(
            f"drain with {history_n:,} finished jobs in the table (jobs/s)",
            statistics.mean(big_rates),
            statistics.mean(empty_rates),
            "jobs/s",
            "the same drain on an empty table",
            ">= 0.9x",
            note=f"{queued:,} queued no-op jobs, one worker, mean of {ROUNDS} runs each",
        )
    )
