"""The drain through PgBouncer in transaction mode, against the same drain connected directly.

Debian's PgBouncer (installed when missing and apt can) runs in front of the bench's server,
pool_mode=transaction. The worker behind it runs with JQS_DATABASE_POOLER=transaction, so
it prepares no named statements and keeps no session state, and listens for new work on a
direct connection (JQS_LISTEN_URL), as the docs advise. Each round runs both, each first in
turn, each on a fresh database; the medians are compared.
"""

from __future__ import annotations

import asyncio
import statistics

from tests.support.pgbouncer import PgBouncer, why_not

from bench.scenarios import DRAIN_ROUNDS, Context, Row, _rotated, jqs_drain_times

POOL_SIZE = 20  # server connections PgBouncer keeps per database: more than the worker's pool


async def pooler(ctx: Context) -> None:
    reason = await asyncio.to_thread(why_not)
    if reason is not None:
        print(f"   skipped: {reason}", flush=True)
        ctx.extra["pooler_skipped"] = reason
        return
    n = 10_000 if ctx.quick else 50_000
    rounds = 1 if ctx.quick else DRAIN_ROUNDS
    bouncer = PgBouncer(ctx.server.dsn, pool_size=POOL_SIZE)
    await asyncio.to_thread(bouncer.start)
    runs: dict[str, list[float]] = {"direct": [], "pgbouncer": []}
    try:
        for round_no in range(rounds):
            for kind in _rotated(list(runs), round_no):
                dsn = await ctx.server.fresh()
                env = (
                    {
                        "DATABASE_URL": bouncer.dsn(dsn),
                        "JQS_DATABASE_POOLER": "transaction",
                        "JQS_LISTEN_URL": dsn,
                    }
                    if kind == "pgbouncer"
                    else {}
                )
                times = await jqs_drain_times(ctx, dsn, n, f"pooler_{kind}_{round_no}", env=env)
                runs[kind].append(times.jobs_per_s)
    finally:
        await asyncio.to_thread(bouncer.close)
    ctx.extra["pooler_runs"] = runs
    ctx.rows.append(
        Row(
            ctx.title(f"drain {n:,} no-op jobs through PgBouncer, transaction mode (jobs/s)"),
            statistics.median(runs["pgbouncer"]),
            statistics.median(runs["direct"]),
            "jobs/s",
            "the same drain connected directly",
            note=(
                "one worker, concurrency 100, JQS_DATABASE_POOLER=transaction, JQS_LISTEN_URL "
                f"direct; PgBouncer pool_size {POOL_SIZE}; median of {rounds} runs each, "
                "taking turns"
            ),
        )
    )
