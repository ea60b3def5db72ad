"""PgQueuer adapter for the job-queue benchmark suite: drain throughput and pickup latency.

Run with the PgQueuer virtualenv's python (``.bench/venvs/pgqueuer``), against an empty
PostgreSQL database made for the run:

    python bench/others/pgqueuer_bench.py --dsn DSN --mode drain --jobs 50000
    python bench/others/pgqueuer_bench.py --dsn DSN --mode latency --rate 200 --jobs 2000

Both modes first (re)install PgQueuer's schema with its own API (``Queries.uninstall`` if
anything is there, then ``Queries.install`` and ``Queries.optimize_autovacuum``, the
equivalents of ``pgq uninstall``, ``pgq install`` and ``pgq autovac``). The consumer is one
``QueueManager`` on one dedicated asyncpg connection (``AsyncpgDriver``), running on uvloop,
with one entrypoint whose async handler does nothing, started with ``batch_size=100`` (see
DEFAULT_BATCH_SIZE) and otherwise PgQueuer's defaults. PgQueuer's default durability, its
job log and statistics tables, and its logging (nothing is configured here) are kept.

drain
    Enqueues N jobs in one batch ``Queries.enqueue`` call before any consumer exists, then
    takes ``time.perf_counter()`` just before starting ``QueueManager.run``. The end is the
    first 20 ms poll at which (a) the handler has run N times and (b) the queue table is
    empty, i.e. PgQueuer has deleted every finished job and written its log row (both happen
    in one statement). The database is only polled once (a) holds, so polling adds no load
    while jobs are running. Afterwards it checks that the log table holds N 'successful'
    rows and that no job ran twice. ``seconds`` is that wall time; ``jobs_per_s`` is
    N / seconds. The queue table is freshly created and bulk-loaded, so PostgreSQL has no
    planner statistics for it unless autovacuum got to it; ``--analyze`` (off by default)
    runs VACUUM ANALYZE and a CHECKPOINT after the enqueue, before the clock starts (as the
    JQS and raw drains get).

latency
    Starts the consumer, waits 1 s and then proves its LISTEN channel works with PgQueuer's
    own health-check round trip. A producer with its own asyncpg pool (``AsyncpgPoolDriver``,
    10 connections, none shared with the consumer, asyncpg's reset-on-release query skipped
    so no extra round trip sits between COMMIT and t_commit) enqueues N jobs, one per
    ``Queries.enqueue`` call (each its own autocommitted transaction), open-loop: the call
    for job i is started at t0 + i/rate as a separate task, never waiting for earlier calls
    to return or for pickup. ``t_commit = time.time()`` is taken as soon as the call returns
    (after COMMIT), keyed by the returned job id; the handler's first statement stores
    ``t_start = time.time()`` for its job id. Latency is t_start - t_commit in ms; p50 and
    p99 (linear interpolation) cover all N jobs, negative values included: producer and
    consumer share one process and event loop, so the consumer can start a job before the
    producer's task resumes to stamp its commit. ``achieved_rate`` is
    N / (last commit - t0). The whole run is bounded by N/rate + 30 s; past that it exits
    non-zero.

Exactly one JSON line goes to stdout; all diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import metadata
from typing import Any

import asyncpg
import uvloop
from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, Job, Queries, QueueManager

ENTRYPOINT = "noop"
POLL_S = 0.02
# PgQueuer's tuning guide (docs/guides/performance-tuning.md): "Increase `batch_size` when
# jobs are short-lived (< 1 s) and you see many dequeue round-trips per second". It gives
# no number; its default is 10. Draining 50k jobs on 2 cores with planner statistics gave
# 10: ~4.5k/s, 25: 12k/s, 50: 16k/s, 100: 18.8k/s, 200: 15.6k-21.6k/s, 500: 15k/s, so 100
# (fastest stable value). The docs give no latency-specific size: latency uses it too.
DEFAULT_BATCH_SIZE = 100
READY_WAIT_S = 1.0
# Enough connections for overlapping COMMITs (each waits for a WAL flush) at 1000 jobs/s.
PRODUCER_POOL_SIZE = 10
LATENCY_SLACK_S = 30.0
STOP_TIMEOUT_S = 30.0


def log(message: str) -> None:
    """Diagnostics go to stderr so stdout carries only the result line."""
    print(f"[pgqueuer_bench] {message}", file=sys.stderr, flush=True)


def pgqueuer_version() -> str:
    try:
        return metadata.version("pgqueuer")
    except metadata.PackageNotFoundError:
        import pgqueuer

        return pgqueuer.__version__


def settings_text(batch_size: int, extra: str) -> str:
    return (
        f"1 QueueManager on 1 asyncpg connection (AsyncpgDriver), uvloop, "
        f"batch_size={batch_size}, max_concurrent_tasks=unlimited, async no-op handler, "
        "dequeue_timeout=30s, heartbeat_timeout=30s (defaults), durability=durable (default), "
        f"pgq autovac applied, default log+statistics tables on, {extra}"
    )


async def install_schema(conn: asyncpg.Connection) -> Queries:
    """Give the run a clean PgQueuer schema, using PgQueuer's own install API."""
    queries = Queries(AsyncpgDriver(conn))
    if await queries.schema_is_installed():
        # A leftover schema may hold jobs or log rows from an earlier run; start empty.
        log("PgQueuer schema already present; uninstalling it first")
        await queries.uninstall()
    await queries.install()
    # "Run `pgq autovac` after installation" is the first item of the performance checklist.
    await queries.optimize_autovacuum()
    return queries


async def keep_session(conn: asyncpg.Connection) -> None:
    """Pool ``reset`` hook that skips asyncpg's default reset query on release.

    The pool driver releases the connection before ``enqueue`` returns, and the default
    reset (``RESET ALL``, ``UNLISTEN *``, ...) is one more server round trip, which would
    land between COMMIT and t_commit and make latencies look shorter. The producer never
    changes session state, so there is nothing to reset.
    """


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation percentile (the same rule as numpy's default)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class Tally:
    """Handler invocations in drain mode; the id set exposes duplicate deliveries."""

    calls: int = 0
    ids: set[int] = field(default_factory=set)


@dataclass
class Consumer:
    """One QueueManager on its own connection, run as a background task."""

    qm: QueueManager
    task: asyncio.Task[None] | None = None

    def start(self, batch_size: int) -> None:
        self.task = asyncio.create_task(self.qm.run(batch_size=batch_size))

    def check_alive(self) -> None:
        """Fail fast if the consumer died instead of waiting for the deadline."""
        if self.task is not None and self.task.done():
            exc = self.task.exception()
            raise RuntimeError(f"PgQueuer consumer stopped early: {exc!r}")

    async def stop(self) -> None:
        """Ask QueueManager to shut down and wait for it to flush its buffers and exit."""
        if self.task is None:
            return
        self.qm.shutdown.set()
        done, _ = await asyncio.wait({self.task}, timeout=STOP_TIMEOUT_S)
        if not done:
            self.task.cancel()
            raise RuntimeError(f"PgQueuer consumer did not stop within {STOP_TIMEOUT_S}s")
        # Raised here even while another error is propagating: Python chains the two, so
        # neither is hidden.
        if (exc := self.task.exception()) is not None:
            raise RuntimeError("PgQueuer consumer failed") from exc


async def wait_until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool], consumer: Consumer
) -> None:
    """Poll ``condition`` every 20 ms; a dead consumer raises instead of hanging."""
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        consumer.check_alive()
        await asyncio.sleep(POLL_S)


async def run_drain(dsn: str, jobs: int, batch_size: int, analyze: bool) -> dict[str, Any]:
    admin = await asyncpg.connect(dsn)
    consumer_conn = await asyncpg.connect(dsn)
    try:
        queries = await install_schema(admin)
        names = queries.qbe.settings.qualified

        log(f"enqueueing {jobs} jobs in one batch call")
        began = time.perf_counter()
        await queries.enqueue([ENTRYPOINT] * jobs, [None] * jobs, [0] * jobs)
        log(f"enqueued in {time.perf_counter() - began:.2f}s")
        if analyze:
            # Opt-in: the table as autovacuum would leave it in a long-running deployment
            # (statistics, hint bits, visibility map), with its dirty pages flushed so no
            # checkpoint lands in the timed run: the same preparation JQS's and the raw
            # loop's drains get. Not part of PgQueuer's API.
            await admin.execute(f"VACUUM (ANALYZE) {names.queue_table}")
            await admin.execute("CHECKPOINT")
            log(f"ran VACUUM ANALYZE {names.queue_table} and CHECKPOINT")

        tally = Tally()
        qm = QueueManager(Queries(AsyncpgDriver(consumer_conn)))

        @qm.entrypoint(ENTRYPOINT)
        async def noop(job: Job) -> None:
            tally.calls += 1
            tally.ids.add(job.id)

        consumer = Consumer(qm)

        async def queue_empty() -> bool:
            return bool(
                await admin.fetchval(f"SELECT NOT EXISTS (SELECT 1 FROM {names.queue_table})")
            )

        started = time.perf_counter()
        consumer.start(batch_size)
        try:
            await wait_until(lambda: tally.calls >= jobs, consumer)
            handled_at = time.perf_counter() - started
            await wait_until(queue_empty, consumer)
            seconds = time.perf_counter() - started
        finally:
            await consumer.stop()
        log(f"handler ran {jobs} times after {handled_at:.3f}s; queue empty after {seconds:.3f}s")

        logged = await admin.fetchval(
            f"SELECT count(*) FROM {names.queue_table_log} WHERE status = 'successful'"
        )
        if logged != jobs or len(tally.ids) != jobs or tally.calls != jobs:
            raise RuntimeError(
                f"expected {jobs} jobs done once each; handler calls={tally.calls}, "
                f"distinct ids={len(tally.ids)}, 'successful' log rows={logged}"
            )
        return {
            "system": "pgqueuer",
            "version": pgqueuer_version(),
            "mode": "drain",
            "jobs": jobs,
            "seconds": round(seconds, 4),
            "jobs_per_s": round(jobs / seconds, 1),
            "settings": settings_text(
                batch_size,
                "VACUUM ANALYZE + CHECKPOINT after enqueue"
                if analyze
                else "no VACUUM/ANALYZE after enqueue",
            ),
        }
    finally:
        await consumer_conn.close()
        await admin.close()


async def run_latency(dsn: str, rate: float, jobs: int, batch_size: int) -> dict[str, Any]:
    admin = await asyncpg.connect(dsn)
    consumer_conn = await asyncpg.connect(dsn)
    # PgQueuer's checklist: "Use `AsyncpgPoolDriver` for producers; a single connection for
    # `QueueManager`". The pool also lets sends overlap, so a slow COMMIT (fsync) does not
    # hold back the next scheduled send: that is what keeps the producer open-loop.
    producer_pool = await asyncpg.create_pool(
        dsn, min_size=PRODUCER_POOL_SIZE, max_size=PRODUCER_POOL_SIZE, reset=keep_session
    )
    try:
        await install_schema(admin)

        starts: dict[int, float] = {}
        qm = QueueManager(Queries(AsyncpgDriver(consumer_conn)))

        @qm.entrypoint(ENTRYPOINT)
        async def record(job: Job) -> None:
            starts[job.id] = time.time()

        consumer = Consumer(qm)
        consumer.start(batch_size)
        try:
            await asyncio.sleep(READY_WAIT_S)
            consumer.check_alive()
            # A NOTIFY round trip through the consumer's own listener: jobs sent after this
            # cannot be missed because LISTEN was not yet set up.
            await qm.listener_healthy(timeout=timedelta(seconds=5))
            log("consumer ready; starting open-loop producer")

            producer = Queries(AsyncpgPoolDriver(producer_pool))
            commits: dict[int, float] = {}
            last_commit = 0.0

            async def send() -> None:
                nonlocal last_commit
                (job_id,) = await producer.enqueue(ENTRYPOINT, None)
                commits[job_id] = time.time()
                last_commit = time.perf_counter()

            sends: set[asyncio.Task[None]] = set()
            t0 = time.perf_counter()
            for i in range(jobs):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                # Fire and move on: the schedule never waits for an earlier send to return.
                task = asyncio.create_task(send())
                sends.add(task)
                task.add_done_callback(sends.discard)
            scheduled_span = time.perf_counter() - t0
            await asyncio.gather(*sends)
            achieved = jobs / (last_commit - t0)
            log(
                f"scheduled {jobs} sends in {scheduled_span:.3f}s; last commit after "
                f"{last_commit - t0:.3f}s ({achieved:.1f}/s)"
            )

            await wait_until(lambda: len(starts) >= jobs, consumer)
        finally:
            await consumer.stop()

        missing = commits.keys() - starts.keys()
        if missing or len(commits) != jobs:
            raise RuntimeError(f"{len(missing)} of {jobs} jobs never reached the handler")
        latencies = sorted((starts[j] - commits[j]) * 1000.0 for j in commits)
        if latencies[0] < 0:
            # Possible when the consumer's pickup is scheduled on the event loop before the
            # producer resumes after COMMIT; kept, since nothing is excluded.
            negative = sum(1 for x in latencies if x < 0)
            log(f"{negative} latencies below 0 ms (min {latencies[0]:.3f} ms)")
        log(
            f"latency ms: min {latencies[0]:.2f}, mean {statistics.fmean(latencies):.2f}, "
            f"max {latencies[-1]:.2f}"
        )
        return {
            "system": "pgqueuer",
            "version": pgqueuer_version(),
            "mode": "latency",
            "rate": rate,
            "jobs": jobs,
            "p50_ms": round(percentile(latencies, 0.50), 3),
            "p99_ms": round(percentile(latencies, 0.99), 3),
            "achieved_rate": round(achieved, 1),
            "settings": settings_text(
                batch_size,
                f"producer: AsyncpgPoolDriver pool={PRODUCER_POOL_SIZE} (no reset on release), "
                "1 enqueue call per job",
            ),
        }
    finally:
        await producer_pool.close()
        await consumer_conn.close()
        await admin.close()


def arm_watchdog(seconds: float) -> None:
    """Hard stop in case a hung connection or shutdown ignores asyncio cancellation."""

    def expire() -> None:
        log(f"error: run exceeded its {seconds:.1f}s budget (watchdog)")
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


async def run(args: argparse.Namespace, budget: float | None) -> dict[str, Any]:
    if args.mode == "drain":
        coro = run_drain(args.dsn, args.jobs, args.batch_size, args.analyze)
    else:
        coro = run_latency(args.dsn, args.rate, args.jobs, args.batch_size)
    async with asyncio.timeout(budget):
        return await coro


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="PostgreSQL DSN of an empty database")
    parser.add_argument("--mode", choices=("drain", "latency"), required=True)
    parser.add_argument("--jobs", type=int, required=True, help="number of jobs (N)")
    parser.add_argument("--rate", type=float, help="latency mode: jobs per second")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"QueueManager.run batch_size (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="drain mode: ANALYZE the queue table after the bulk enqueue (default off)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="drain mode: give up after this many seconds (default 600)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.mode == "latency" and (args.rate is None or args.rate <= 0):
        parser.error("--mode latency needs --rate > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    wall_start = time.monotonic()
    args = parse_args(argv)
    limit = args.jobs / args.rate + LATENCY_SLACK_S if args.mode == "latency" else args.timeout
    # The asyncio deadline fires first so the normal error path (and connection cleanup)
    # runs; the watchdog only catches a hang in that path. Both count from here, after the
    # imports (well under a second), with margins of 3 s and 0.5 s left for them.
    arm_watchdog(max(limit - (time.monotonic() - wall_start) - 0.5, 0.1))
    budget = max(limit - (time.monotonic() - wall_start) - 3.0, 0.1)
    try:
        result = uvloop.run(run(args, budget))
    except TimeoutError:
        log(f"error: run did not finish within {limit:.1f}s")
        return 2
    # Any other failure propagates: Python prints the traceback to stderr and exits 1.
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
