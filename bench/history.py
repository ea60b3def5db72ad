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

from bench.scenarios import Context, Row, _fill, jqs_drain
from jqs.models import JobFilter, JobStatus
from jqs.store import JobStore
from jqs.store.database import SESSION_SETTINGS, create_pool
from jqs.store.queries import q

HISTORY = 1_000_000
QUEUED = 50_000
ROUNDS = 6
CYCLES = 200  # claim + complete batches timed per run
WARMUP = 20  # and run before the timing starts


async def _manual_vacuum(dsn: str) -> None:
    """Autovacuum off for this table: each run vacuums first (see _fill), and a vacuum of the
    big table starting in the middle of a timed run would measure vacuum, not the claim."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = off)")
    finally:
        await conn.close()


async def _add_history(dsn: str, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            INSERT INTO jobs (payload, status, result, attempts, created_at, updated_at,
                              started_at, finished_at)
            SELECT $1::jsonb, 'completed', 'null'::jsonb, 1, t, t, t, t
            -- Finished within the last day: inside the retention window, so the worker's
            -- pruner has nothing to delete while it drains.
            FROM (SELECT now() - make_interval(secs => g * 86000.0 / $2) AS t
                  FROM generate_series(1, $2) AS g) AS s
            """,
            orjson.dumps({"task": "noop"}).decode(),
            n,
        )
        await conn.execute("VACUUM ANALYZE jobs")
    finally:
        await conn.close()


def _claim_args(token: uuid.UUID) -> tuple[object, ...]:
    """job_claim's parameters: 100 jobs of the default queue, fast path, this lease token."""
    return (["default"], [100], [None], 100, 30.0, "bench", None, True, token)


async def _claim_path(dsn: str, cycles: int) -> float:
    """Mean milliseconds of one claim of 100 jobs plus their batched completion: the
    statements a worker runs per batch, timed on their own, one after the other, after
    WARMUP untimed ones (the first touches of pages after the fill's checkpoint)."""
    await _fill(dsn, (WARMUP + cycles) * 100)
    conn = await asyncpg.connect(dsn, server_settings=SESSION_SETTINGS)  # planned as JQS does
    try:
        began = 0.0
        for done in range(WARMUP + cycles):
            if done == WARMUP:
                began = time.perf_counter()
            token = uuid.uuid4()
            ids = [r[0] for r in await conn.fetch(q("job_claim"), *_claim_args(token))]
            await conn.execute(q("job_complete_many"), ids, [token] * len(ids), ["null"] * len(ids))
        return (time.perf_counter() - began) * 1000 / cycles
    finally:
        await conn.close()


async def _plans(dsn: str) -> dict[str, str]:
    """EXPLAIN ANALYZE of one claim of 100 and of completing them, rolled back.

    The statements are prepared and run as JQS's sessions run them, with a generic plan
    (SESSION_SETTINGS); EXPLAIN of a query with bound parameters would show a custom plan.
    """
    await _fill(dsn, 1_000)
    conn = await asyncpg.connect(dsn, server_settings=SESSION_SETTINGS)
    plans: dict[str, str] = {}
    explain = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE "
    try:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(
                "PREPARE claim(text[], integer[], integer[], integer, float8, text, "
                "timestamptz, boolean, uuid) AS\n" + q("job_claim")
            )
            await conn.execute(
                "PREPARE complete(bigint[], uuid[], jsonb[]) AS\n" + q("job_complete_many")
            )
            token = uuid.uuid4()
            rows = await conn.fetch(
                explain + "claim('{default}', '{100}', '{NULL}', 100, 30, 'bench', NULL, true, "
                f"'{token}')"
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
                explain + f"complete('{{{','.join(map(str, ids))}}}', "
                f"array_fill('{token}'::uuid, ARRAY[{len(ids)}]), "
                f"array_fill('null'::jsonb, ARRAY[{len(ids)}]))"
            )
            plans["complete"] = "\n".join(r[0] for r in rows)
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    return plans


# What GET /jobs may ask for, timed on the big table: the listings whose index migration
# 0005 replaced, including ones that find nothing (a scan would read every row for them).
LISTINGS: list[tuple[str, JobFilter]] = [
    ("all", JobFilter()),
    *((f"status={s.value}", JobFilter(status=s)) for s in JobStatus),
    ("task=noop", JobFilter(task="noop")),
    ("task=absent", JobFilter(task="absent")),
    ("status=failed, task=noop", JobFilter(status=JobStatus.FAILED, task="noop")),
]


async def _listings(dsn: str, runs: int = 10) -> dict[str, float]:
    """Median milliseconds of the first page (20 jobs) of each listing, through JobStore."""
    pool = await create_pool(dsn, min_size=1, max_size=1, connect_timeout=10)
    try:
        store = JobStore(pool)
        medians: dict[str, float] = {}
        for label, job_filter in LISTINGS:
            times = []
            for _ in range(runs):
                began = time.perf_counter()
                await store.find(job_filter, limit=20, offset=0)
                times.append((time.perf_counter() - began) * 1000)
            medians[label] = statistics.median(times)
        return medians
    finally:
        await pool.close()


async def history(ctx: Context) -> None:
    """Drain speed on an empty table vs one holding a million finished jobs."""
    history_n, queued = (100_000, 10_000) if ctx.quick else (HISTORY, QUEUED)
    big = await ctx.server.fresh()
    await _manual_vacuum(big)
    began = time.monotonic()
    await _add_history(big, history_n)
    print(f"   {history_n:,} finished jobs written in {time.monotonic() - began:.0f}s", flush=True)
    empty_ms: list[float] = []
    big_ms: list[float] = []
    empty_rates: list[float] = []
    big_rates: list[float] = []
    for round_no in range(ROUNDS):  # alternating, so drift in the machine hits both sides
        empty = await ctx.server.fresh(keep=[big])
        await _manual_vacuum(empty)
        # Each side goes first every other round, so whatever the order does falls on both.
        sides = [(empty, empty_ms, empty_rates, "empty"), (big, big_ms, big_rates, "big")]
        if round_no % 2:
            sides.reverse()
        for dsn, times, _, _ in sides:
            times.append(await _claim_path(dsn, CYCLES))
        for dsn, _, rates, name in sides:
            rates.append(await jqs_drain(ctx, dsn, queued, f"history_{name}_{round_no}"))
    ctx.extra["history_plans"] = await _plans(big)
    ctx.extra["history_listings"] = await _listings(big)
    ctx.extra["history_runs"] = {
        "claim_path_ms": {"empty": empty_ms, "big": big_ms},
        "drain_jobs_per_s": {"empty": empty_rates, "big": big_rates},
    }
    ms, base_ms = statistics.median(big_ms), statistics.median(empty_ms)
    ctx.rows.append(
        Row(
            f"claim + complete 100 jobs, {history_n:,} finished jobs in the table (ms)",
            ms,
            base_ms,
            "ms",
            "the same statements on an empty table",
            "<= 1.1x empty",
            higher_is_better=False,
            met=ms <= 1.1 * base_ms,
            note=f"{CYCLES} batches one after the other, median of {ROUNDS} runs each",
        )
    )
    ctx.rows.append(
        Row(
            f"drain with {history_n:,} finished jobs in the table (jobs/s)",
            statistics.median(big_rates),
            statistics.median(empty_rates),
            "jobs/s",
            "the same drain on an empty table",
            note=f"{queued:,} queued no-op jobs, one worker, median of {ROUNDS} runs each",
        )
    )
