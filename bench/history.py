"""Does a long history slow the queue down? Drain with and without 1,000,000 finished jobs.

With a million finished jobs in the table, the claim path should not be measurably slower.
Both sides run the same `jqs worker` on the same number of queued jobs; one database holds
nothing else, the other a million completed jobs (vacuumed and analyzed, as autovacuum would
leave them). Everything goes through JQS's processes: what is timed is the worker's drain,
and the database time its sessions spent on it (`pg_stat_database.active_time`, the time
PostgreSQL spent executing their statements: claims, completions and the little else a
worker sends). Which indexes those statements read on the big table, and how much, comes
from `pg_stat_user_indexes`; listing speed on it from `GET /jobs`.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import asyncpg
import orjson

from bench.common import free_port, jqs, wait_http
from bench.http_load import Client
from bench.scenarios import Context, Row, _drain_times, _fill, _wait_done

HISTORY = 1_000_000
QUEUED = 50_000
ROUNDS = 6
# The statistics views are fed by each backend when it goes idle for a while or exits.
STATS_SETTLE_S = 1.0


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


async def _stats(dsn: str) -> tuple[float, dict[str, tuple[int, int]]]:
    """(ms of statement time in this database so far, {index: (scans, entries read)})."""
    conn = await asyncpg.connect(dsn)
    try:
        active = await conn.fetchval(
            "SELECT active_time FROM pg_stat_database WHERE datname = current_database()"
        )
        rows = await conn.fetch(
            "SELECT indexrelname, idx_scan, idx_tup_read FROM pg_stat_user_indexes "
            "WHERE relname = 'jobs'"
        )
    finally:
        await conn.close()
    return float(active or 0.0), {r[0]: (int(r[1]), int(r[2])) for r in rows}


async def _measured_drain(
    ctx: Context, dsn: str, n: int, name: str
) -> tuple[float, float, dict[str, tuple[int, int]]]:
    """One worker drains n queued no-op jobs: (jobs/s, database ms per 100 jobs, index
    reads {index: (scans, entries)} during the drain)."""
    after = await _fill(dsn, n)
    await asyncio.sleep(STATS_SETTLE_S)  # the fill's session has reported its statements
    active0, index0 = await _stats(dsn)
    proc = jqs(
        ["worker"],
        {"DATABASE_URL": dsn, "JQS_WORKER_CONCURRENCY": "100", "JQS_LOG_LEVEL": "warning"},
        ctx.log(name),
    )
    try:
        await _wait_done(dsn, n, 600, proc, after=after)
    finally:
        proc.stop()
    await asyncio.sleep(STATS_SETTLE_S)  # the worker's sessions have reported theirs
    active1, index1 = await _stats(dsn)
    reads = {
        name: (scans - index0.get(name, (0, 0))[0], read - index0.get(name, (0, 0))[1])
        for name, (scans, read) in index1.items()
    }
    rate = (await _drain_times(dsn, after)).jobs_per_s
    return rate, (active1 - active0) / n * 100, reads


# What GET /jobs may ask for, timed on the big table: the listings whose index migration
# 0005 replaced, including ones that find nothing (a scan would read every row for them).
LISTINGS: list[tuple[str, str]] = [
    ("all", ""),
    *(
        (f"status={s}", f"status={s}")
        for s in ("queued", "processing", "completed", "failed", "cancelled")
    ),
    ("task=noop", "task=noop"),
    ("task=absent", "task=absent"),
    ("status=failed, task=noop", "status=failed&task=noop"),
]


async def _listings(ctx: Context, dsn: str, runs: int = 10) -> dict[str, float]:
    """Median milliseconds of the first page (20 jobs) of each listing, over HTTP from a
    `jqs serve --no-worker` on the big table."""
    port = free_port()
    proc = jqs(
        ["serve", "--no-worker"],
        {"DATABASE_URL": dsn, "PORT": str(port), "JQS_LOG_LEVEL": "warning"},
        ctx.log("history_listings"),
    )
    client = Client("127.0.0.1", port, size=1)
    try:
        await wait_http(f"http://127.0.0.1:{port}/health")
        await client.open()
        medians: dict[str, float] = {}
        for label, query in LISTINGS:
            path = f"/jobs?limit=20&page=1&{query}".rstrip("&")
            times = []
            for _ in range(runs):
                began = time.perf_counter()
                status, answer = await client.get(path)
                times.append((time.perf_counter() - began) * 1000)
                assert status == 200, answer[:300]
            medians[label] = statistics.median(times)
        return medians
    finally:
        await client.close()
        proc.stop()


async def history(ctx: Context) -> None:
    """Drain speed and database time on an empty table vs one holding a million finished
    jobs."""
    history_n, queued = (100_000, 10_000) if ctx.quick else (HISTORY, QUEUED)
    rounds = 2 if ctx.quick else ROUNDS
    big = await ctx.server.fresh()
    await _manual_vacuum(big)
    began = time.monotonic()
    await _add_history(big, history_n)
    print(f"   {history_n:,} finished jobs written in {time.monotonic() - began:.0f}s", flush=True)
    db_ms: dict[str, list[float]] = {"empty": [], "big": []}
    rates: dict[str, list[float]] = {"empty": [], "big": []}
    reads: dict[str, tuple[int, int]] = {}
    for round_no in range(rounds):  # alternating, so drift in the machine hits both sides
        empty = await ctx.server.fresh(keep=[big])
        await _manual_vacuum(empty)
        # Each side goes first every other round, so whatever the order does falls on both.
        sides = [("empty", empty), ("big", big)]
        if round_no % 2:
            sides.reverse()
        for side, dsn in sides:
            rate, ms, index_reads = await _measured_drain(
                ctx, dsn, queued, f"history_{side}_{round_no}"
            )
            rates[side].append(rate)
            db_ms[side].append(ms)
            if side == "big":
                reads = index_reads
    ctx.extra["history_index_reads"] = {"jobs": queued, "reads": reads}
    ctx.extra["history_listings"] = await _listings(ctx, big)
    ctx.extra["history_runs"] = {
        "finished": history_n,
        "db_ms_per_100": db_ms,
        "drain_jobs_per_s": rates,
    }
    ms, base_ms = statistics.median(db_ms["big"]), statistics.median(db_ms["empty"])
    ctx.rows.append(
        Row(
            ctx.title(
                f"database time per 100 jobs drained, {history_n:,} finished jobs in the table (ms)"
            ),
            ms,
            base_ms,
            "ms",
            "the same drain on an empty table",
            "<= 1.1x empty",
            higher_is_better=False,
            met=ms <= 1.1 * base_ms,
            note=f"statement time of one worker's sessions (pg_stat_database.active_time), "
            f"{queued:,} jobs; median of {rounds} runs each",
        )
    )
    ctx.rows.append(
        Row(
            ctx.title(f"drain with {history_n:,} finished jobs in the table (jobs/s)"),
            statistics.median(rates["big"]),
            statistics.median(rates["empty"]),
            "jobs/s",
            "the same drain on an empty table",
            note=f"{queued:,} queued no-op jobs, one worker, median of {rounds} runs each",
        )
    )
