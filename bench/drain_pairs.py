"""The drain with metrics on (the default) against the same drain with JQS_METRICS=false.

What metrics cost a job is a small part of what the job costs, and a drain's rate moves from
one run to the next on the same machine (autovacuum, checkpoints, the scheduler) by more
than that part: medians of a few long runs minutes apart cannot tell 5% apart. So short
drains run in pairs, back to back, each side first in turn, each on a fresh database; the
ratio is the median of the pairs' ratios.
"""

from __future__ import annotations

import statistics

from bench.scenarios import Context, Row, _rotated, jqs_drain_times

PAIRS = 10
JOBS = 20_000


async def metrics_pairs(ctx: Context) -> None:
    pairs, n = (2, 5_000) if ctx.quick else (PAIRS, JOBS)
    found: list[dict[str, float]] = []
    for p in range(pairs):
        rate: dict[str, float] = {}
        for side in _rotated(["off", "on"], p):
            times = await jqs_drain_times(
                ctx,
                await ctx.server.fresh(),
                n,
                f"drain_metrics_{side}_{p}",
                metrics=side == "on",
            )
            rate[side] = times.jobs_per_s
        found.append(rate)
    ctx.extra["drain_metrics_pairs"] = found
    ctx.rows.append(
        Row(
            ctx.title(f"drain {n:,} no-op jobs, one worker, metrics on (the default) (jobs/s)"),
            statistics.median(pair["on"] for pair in found),
            statistics.median(pair["off"] for pair in found),
            "jobs/s",
            "the same drain with JQS_METRICS=false",
            ">= 0.95x",
            paired=statistics.median(pair["on"] / pair["off"] for pair in found),
            note=(
                f"JQS_LOG_LEVEL=warning both; {len(found)} pairs of drains back to back, each "
                "side first in turn, fresh databases; ratio: the median of the pairs' ratios"
            ),
        )
    )
