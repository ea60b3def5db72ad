"""PgQueuer for the benchmark suite: drain throughput and pickup latency.

Run with the PgQueuer virtualenv's python (``.bench/venvs/pgqueuer``, made by bench/run.py),
against an empty PostgreSQL database made for the run:

    python bench/others/pgqueuer_bench.py --dsn DSN --mode drain --jobs 50000 --analyze
    python bench/others/pgqueuer_bench.py --dsn DSN --mode latency --rate 200 --jobs 2000

PgQueuer is set up as its documentation advises (docs/guides/performance-tuning.md, its
"quick-reference checklist"): the schema from its own API (``Queries.install``, then
``Queries.optimize_autovacuum``, i.e. ``pgq install`` and ``pgq autovac``); the consumer is
one ``QueueManager`` on a dedicated asyncpg connection (``AsyncpgDriver``: "a single
connection for QueueManager"), on uvloop, with one async no-op entrypoint, run with
``batch_size=100`` and otherwise its defaults (durability ``durable``, its job log and
statistics on); producers use a pool (``AsyncpgPoolDriver``: "use AsyncpgPoolDriver for
producers"), in a process of their own, as an application enqueueing for a ``pgq run``
worker would.

drain
    Enqueues N jobs in one ``Queries.enqueue`` call before the consumer exists; with
    ``--analyze``, VACUUM ANALYZE and CHECKPOINT follow (the preparation every drain of the
    suite gets). Then the consumer runs until the handler has run N times and the queue
    table is empty. ``jobs_per_s`` is N over the span from the first dequeue to the last
    completion by the database's clock (the ``created`` times of the first 'picked' and the
    last 'successful' row of PgQueuer's own job log), the way JQS's drains and the raw
    loop's are timed (first claim to last completion). ``wall_seconds`` is the same drain by
    this process's clock, start-up included, for reference.

latency
    Starts the consumer in this process and proves its LISTEN channel with PgQueuer's
    health-check round trip; then starts a producer process (this script, ``--mode
    produce``) that enqueues N jobs open-loop at ``--rate`` (job i is sent at t0 + i/rate,
    by bench/pacing.py, the pacing every system's producer uses), one ``Queries.enqueue``
    per job (one autocommitted statement), and stamps ``time.time()`` before the call and
    when it returns (its COMMIT done). The handler's first statement stamps its start. The
    result holds every job's commit-to-start and send-to-start latency in ms; the suite
    takes percentiles of them with the same function as for every other system.

Exactly one JSON line goes to stdout; all diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import uvloop
from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, Job, Queries, QueueManager

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for bench.pacing
from bench.pacing import paced

ENTRYPOINT = "noop"
POLL_S = 0.02
# The tuning guide: "Increase `batch_size` when jobs are short-lived (< 1 s) and you see many
# dequeue round-trips per second". It gives no number; its default is 10. Draining 50k jobs
# on 2 cores gave 10: ~4.5k/s, 25: 12k/s, 50: 16k/s, 100: 18.8k/s, 200: 15.6k-21.6k/s, 500:
# 15k/s, so 100 (the fastest stable value); latency uses it too.
BATCH_SIZE = 100
# Enough connections for overlapping COMMITs (each waits for a WAL flush) at 1000 jobs/s.
PRODUCER_POOL_SIZE = 10
STOP_TIMEOUT_S = 30.0


def log(message: str) -> None:
    print(f"[pgqueuer_bench] {message}", file=sys.stderr, flush=True)


def version() -> str:
    return metadata.version("pgqueuer")


def settings_text(extra: str) -> str:
    return (
        "1 QueueManager on its own asyncpg connection (AsyncpgDriver), uvloop, "
        f"batch_size={BATCH_SIZE}, async no-op handler, other run() arguments default, "
        "durability=durable (default), pgq autovac applied, " + extra
    )


async def install_schema(conn: asyncpg.Connection) -> Queries:
    """A clean PgQueuer schema, from PgQueuer's own install API."""
    queries = Queries(AsyncpgDriver(conn))
    if await queries.schema_is_installed():
        await queries.uninstall()
    await queries.install()
    # "Run `pgq autovac` after installation": the checklist's first item.
    await queries.optimize_autovacuum()
    return queries


class Consumer:
    """One QueueManager on its own connection, run as a background task."""

    def __init__(self, conn: asyncpg.Connection, handler: Any) -> None:
        self.qm = QueueManager(Queries(AsyncpgDriver(conn)))
        self.qm.entrypoint(ENTRYPOINT)(handler)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.qm.run(batch_size=BATCH_SIZE))

    def check_alive(self) -> None:
        if self.task is not None and self.task.done():
            raise RuntimeError(f"PgQueuer's consumer stopped early: {self.task.exception()!r}")

    async def stop(self) -> None:
        """Ask the QueueManager to shut down (it flushes its buffers) and wait for it."""
        if self.task is None:
            return
        self.qm.shutdown.set()
        done, _ = await asyncio.wait({self.task}, timeout=STOP_TIMEOUT_S)
        if not done:
            self.task.cancel()
            raise RuntimeError(f"PgQueuer's consumer did not stop within {STOP_TIMEOUT_S}s")
        if (exc := self.task.exception()) is not None:
            raise RuntimeError("PgQueuer's consumer failed") from exc

    async def wait_until(self, condition: Any) -> None:
        """Poll `condition` (sync or async) every 20 ms; a dead consumer raises."""
        while True:
            result = condition()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            self.check_alive()
            await asyncio.sleep(POLL_S)


async def run_drain(dsn: str, jobs: int, analyze: bool) -> dict[str, Any]:
    admin = await asyncpg.connect(dsn)
    consumer_conn = await asyncpg.connect(dsn)
    try:
        queries = await install_schema(admin)
        names = queries.qbe.settings.qualified
        await queries.enqueue([ENTRYPOINT] * jobs, [None] * jobs, [0] * jobs)
        if analyze:
            await admin.execute(f"VACUUM (ANALYZE) {names.queue_table}")
            await admin.execute("CHECKPOINT")

        seen: set[int] = set()
        calls = 0

        async def noop(job: Job) -> None:
            nonlocal calls
            calls += 1
            seen.add(job.id)

        consumer = Consumer(consumer_conn, noop)

        async def queue_empty() -> bool:
            return bool(
                await admin.fetchval(f"SELECT NOT EXISTS (SELECT 1 FROM {names.queue_table})")
            )

        began = time.perf_counter()
        consumer.start()
        try:
            await consumer.wait_until(lambda: calls >= jobs)
            await consumer.wait_until(queue_empty)
            wall = time.perf_counter() - began
        finally:
            await consumer.stop()
        row = await admin.fetchrow(
            f"SELECT count(*) FILTER (WHERE status = 'successful') AS done, "
            "extract(epoch FROM max(created) FILTER (WHERE status = 'successful') "
            "  - min(created) FILTER (WHERE status = 'picked')) AS seconds "
            f"FROM {names.queue_table_log}"
        )
        assert row is not None
        if row["done"] != jobs or len(seen) != jobs or calls != jobs:
            raise RuntimeError(
                f"expected {jobs} jobs done once each; handler calls={calls}, "
                f"distinct ids={len(seen)}, 'successful' log rows={row['done']}"
            )
        seconds = float(row["seconds"])
        return {
            "system": "pgqueuer",
            "version": version(),
            "mode": "drain",
            "jobs": jobs,
            "seconds": round(seconds, 4),
            "wall_seconds": round(wall, 4),
            "jobs_per_s": round(jobs / seconds, 1),
            "settings": settings_text(
                "VACUUM ANALYZE + CHECKPOINT after the enqueue" if analyze else "no VACUUM"
            ),
        }
    finally:
        await consumer_conn.close()
        await admin.close()


async def run_latency(dsn: str, rate: float, jobs: int, stamps: Path) -> dict[str, Any]:
    admin = await asyncpg.connect(dsn)
    consumer_conn = await asyncpg.connect(dsn)
    starts: dict[int, float] = {}

    async def record(job: Job) -> None:
        starts[job.id] = time.time()

    consumer = Consumer(consumer_conn, record)
    try:
        await install_schema(admin)
        consumer.start()
        await asyncio.sleep(1.0)
        consumer.check_alive()
        # A NOTIFY round trip through the consumer's own listener: jobs sent after this
        # cannot be missed because LISTEN was not yet set up.
        await consumer.qm.listener_healthy(timeout=timedelta(seconds=5))
        producer = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--dsn",
            dsn,
            "--mode",
            "produce",
            "--rate",
            str(rate),
            "--jobs",
            str(jobs),
            "--stamps",
            str(stamps),
        )
        if await producer.wait() != 0:
            raise RuntimeError("the producer failed")
        await consumer.wait_until(lambda: len(starts) >= jobs)
    finally:
        await consumer.stop()
        await consumer_conn.close()
        await admin.close()
    sent: dict[int, float] = {}
    committed: dict[int, float] = {}
    for line in stamps.read_text().splitlines():
        job_id, at_send, at_commit = line.split()
        sent[int(job_id)], committed[int(job_id)] = float(at_send), float(at_commit)
    stamps.unlink()
    if committed.keys() != starts.keys():
        raise RuntimeError(f"{len(committed.keys() - starts.keys())} jobs never started")
    return {
        "system": "pgqueuer",
        "version": version(),
        "mode": "latency",
        "rate": rate,
        "jobs": jobs,
        "latencies_ms": [round((starts[i] - committed[i]) * 1000, 4) for i in committed],
        "send_to_start_ms": [round((starts[i] - sent[i]) * 1000, 4) for i in committed],
        "window": [min(sent.values()), max(starts.values())],
        "achieved_rate": round(jobs / (max(committed.values()) - min(sent.values())), 1),
        "settings": settings_text(
            f"producer process: AsyncpgPoolDriver, pool of {PRODUCER_POOL_SIZE}, "
            "one enqueue per job"
        ),
    }


async def run_producer(dsn: str, rate: float, jobs: int, stamps: Path) -> None:
    """Enqueue open-loop; write "job_id t_send t_commit" lines to `stamps`."""

    async def keep_session(conn: asyncpg.Connection) -> None:
        """The pool's reset on release, skipped: the producer changes no session state, and
        asyncpg's default (RESET ALL, UNLISTEN *, ...) would be one more round trip before
        the call returns and the commit is stamped."""

    pool = await asyncpg.create_pool(
        dsn, min_size=PRODUCER_POOL_SIZE, max_size=PRODUCER_POOL_SIZE, reset=keep_session
    )
    producer = Queries(AsyncpgPoolDriver(pool))
    lines: list[str] = []

    async def send(_: int) -> None:
        began = time.time()
        (job_id,) = await producer.enqueue(ENTRYPOINT, None)
        lines.append(f"{job_id} {began:.6f} {time.time():.6f}\n")

    try:
        await paced(jobs, rate, send)
    finally:
        await pool.close()
    stamps.write_text("".join(lines))


def arm_watchdog(seconds: float) -> None:
    """Hard stop in case a hung connection or shutdown ignores asyncio cancellation."""

    def expire() -> None:
        log(f"error: run exceeded its {seconds:.0f}s budget")
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dsn", required=True, help="an empty database, for this run only")
    parser.add_argument("--mode", choices=("drain", "latency", "produce"), required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--rate", type=float, default=200.0, help="latency: jobs per second")
    parser.add_argument("--analyze", action="store_true", help="drain: VACUUM ANALYZE first")
    parser.add_argument("--stamps", default=None, help="produce: where to write the stamps")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    if args.jobs < 1 or args.rate <= 0:
        parser.error("--jobs and --rate must be positive")
    if args.mode == "produce":
        uvloop.run(run_producer(args.dsn, args.rate, args.jobs, Path(args.stamps)))
        return 0
    limit = args.jobs / args.rate + 60 if args.mode == "latency" else args.timeout
    arm_watchdog(limit + 5)
    stamps = Path(args.stamps or f"/tmp/pgqueuer-stamps-{os.getpid()}.txt")

    async def run() -> dict[str, Any]:
        async with asyncio.timeout(limit):
            if args.mode == "drain":
                return await run_drain(args.dsn, args.jobs, args.analyze)
            return await run_latency(args.dsn, args.rate, args.jobs, stamps)

    try:
        result = uvloop.run(run())
    except TimeoutError:
        log(f"error: run did not finish within {limit:.0f}s")
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
