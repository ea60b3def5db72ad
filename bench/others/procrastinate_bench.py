"""Procrastinate adapter for the job-queue benchmark suite: drain throughput and pickup latency.

Run it with the Python of a virtualenv that has ``procrastinate`` (psycopg 3) installed::

    python bench/others/procrastinate_bench.py --dsn DSN --mode drain --jobs 50000
    python bench/others/procrastinate_bench.py --dsn DSN --mode latency --rate 200 --jobs 2000

Both modes first make DSN's database clean (every ``procrastinate_*`` table, function and type
in the current schema is dropped) and then install Procrastinate's own schema with
``app.schema_manager.apply_schema_async()``.

drain
    All N no-op jobs are inserted up front with ``Task.batch_defer_async`` (Procrastinate's
    documented bulk API), in chunks of ``--batch-size``, before any worker exists; then
    VACUUM ANALYZE and CHECKPOINT (see run_drain for why; ``--no-analyze`` skips them). One
    worker runs in this process (``app.run_worker_async``, ``wait=False``) until a separate
    connection, polling every 20 ms, sees no job ``todo``/``doing`` and exactly N
    ``succeeded``. ``jobs_per_s`` is N over the span from the first job's start to the last
    one's success by the database's clock (Procrastinate's ``procrastinate_events``), the
    way JQS's drains are timed; ``wall_seconds`` is the drain by this process's clock.

latency
    One worker (same settings, LISTEN/NOTIFY on, ``wait=True``) is started in this process
    and given 1 s to get ready. A producer process (this script, ``--mode produce``) with its
    own App and connection pool defers N jobs open-loop (job i is sent at t0 + i/rate, by
    bench/pacing.py, the pacing every system's producer uses), each in its own
    ``defer_async`` call (one transaction, committed when the call returns), and stamps
    ``time.time()`` before the call and when it returns; the task's first statement stamps
    its start. The result holds every job's commit-to-start and send-to-start latency in
    ms; the suite takes percentiles of them with the same function as for every system.
    The whole run is bounded to N/rate + 60 s; past that it exits non-zero.

Exactly one JSON line is printed on stdout; all diagnostics go to stderr. Procrastinate's
logging is left at Python's defaults (nothing is configured here).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import procrastinate
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for bench.pacing
from bench.pacing import paced

TASK_NAME = "bench_noop"

# How often the measuring connection looks at the jobs table.
POLL_INTERVAL_S = 0.02
# Time the latency worker gets to register and LISTEN before the first defer.
WORKER_WARMUP_S = 1.0

# Concurrency: the worker docs say "Indicates how many asynchronous jobs the worker can run
# in parallel. Do not use concurrency if you have synchronous blocking tasks." Our task is an
# `async def` that does nothing, so concurrency is safe. The worker still fetches jobs one at
# a time (one fetch_job query per job), so concurrency only overlaps running/finishing jobs
# with the next fetch; on the 2-core test box 1, 10 and 30 drained within run-to-run noise,
# and 10 needs fewer connections than the docs' example value of 30.
# Pool: docs/discussions.md says "The shorter your average job execution time, the more your
# pool will need to contain as many connections as your concurrency (plus one)", and the
# LISTEN connection "is not counted in the pool", hence max_size = C + 1.
DEFAULT_CONCURRENCY = 10
DEFAULT_BATCH_SIZE = 10_000
PRODUCER_POOL_SIZE = 4

# Removes every object Procrastinate's schema creates (all are named procrastinate_*), so a
# rerun against the same database starts from an empty queue and a freshly applied schema.
# Tables go first (CASCADE takes their triggers, indexes, sequences and row types with them).
RESET_SCHEMA_SQL = r"""
DO $$
DECLARE
    obj record;
BEGIN
    FOR obj IN
        SELECT c.oid::regclass AS name FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relkind IN ('r', 'p') AND c.relname LIKE 'procrastinate\_%'
    LOOP
        EXECUTE format('DROP TABLE IF EXISTS %s CASCADE', obj.name);
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure AS name FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
          AND p.proname LIKE 'procrastinate\_%'
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', obj.name);
    END LOOP;
    FOR obj IN
        SELECT t.oid::regtype AS name FROM pg_type t
        WHERE t.typnamespace = current_schema()::regnamespace
          AND t.typtype IN ('e', 'c') AND t.typname LIKE 'procrastinate\_%'
    LOOP
        EXECUTE format('DROP TYPE IF EXISTS %s CASCADE', obj.name);
    END LOOP;
END
$$;
"""

# Cheap "is anything left?" check: an ordered LIMIT 1 walks the partial index
# procrastinate_jobs_id_lock_idx_v1 (status IN ('todo', 'doing')) and stops at the first live
# entry, so polling every 20 ms costs the database little even with 50,000 queued jobs (a
# count(*) would visit every pending row each time). The exact "N rows succeeded" count only
# runs once nothing is left.
PENDING_SQL = (
    "SELECT id FROM procrastinate_jobs WHERE status IN ('todo', 'doing') ORDER BY id LIMIT 1"
)
SUCCEEDED_SQL = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"


class BenchError(RuntimeError):
    """The benchmark could not produce a valid measurement."""


def log(message: str) -> None:
    print(f"[procrastinate_bench] {message}", file=sys.stderr, flush=True)


def make_app(dsn: str, pool_size: int) -> procrastinate.App:
    # A fixed-size pool (min = max) so connection set-up never lands inside a measurement.
    connector = procrastinate.PsycopgConnector(conninfo=dsn, min_size=pool_size, max_size=pool_size)
    return procrastinate.App(connector=connector)


def worker_options(args: argparse.Namespace, *, wait: bool) -> dict[str, Any]:
    return {
        "concurrency": args.concurrency,
        "wait": wait,
        # LISTEN/NOTIFY (the default) wakes an idle worker as soon as a job is inserted;
        # the polling interval is only its fallback, so its default (5 s) is kept.
        "listen_notify": True,
        # The worker runs inside this benchmark process; the worker docs recommend
        # install_signal_handlers=False there and stopping it by cancelling its task.
        "install_signal_handlers": False,
    }


def settings_text(args: argparse.Namespace, *, wait: bool) -> str:
    return (
        f"1 worker in-process, async no-op task, concurrency={args.concurrency}, "
        f"psycopg pool min=max={args.concurrency + 1} (+1 LISTEN conn), listen_notify=True, "
        "fetch_job_polling_interval=5.0 (default), delete_jobs=never (default), "
        f"wait={wait}"
    )


async def reset_and_apply_schema(dsn: str, app: procrastinate.App) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(RESET_SCHEMA_SQL)
    await app.schema_manager.apply_schema_async()


async def stop_worker(worker: asyncio.Task[None], grace_s: float = 10.0) -> None:
    """Cancel the worker task (a graceful stop, per the docs) and wait for it to finish."""
    if not worker.done():
        worker.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(worker, grace_s)
    if worker.done() and not worker.cancelled() and worker.exception() is not None:
        raise BenchError("worker crashed") from worker.exception()


def check_worker_alive(worker: asyncio.Task[None]) -> None:
    if not worker.done():
        return
    if not worker.cancelled() and worker.exception() is not None:
        raise BenchError("worker crashed") from worker.exception()
    raise BenchError("worker stopped before all jobs were processed")


# --------------------------------------------------------------------------------------- drain


async def run_drain(args: argparse.Namespace) -> dict[str, Any]:
    n: int = args.jobs
    app = make_app(args.dsn, args.concurrency + 1)

    async def noop() -> None:
        return None

    app.task(name=TASK_NAME)(noop)
    deferrer = app.configure_task(TASK_NAME)

    async with app.open_async():
        await reset_and_apply_schema(args.dsn, app)
        # The payload is empty; each chunk is one INSERT via procrastinate_defer_jobs_v1.
        for start in range(0, n, args.batch_size):
            await deferrer.batch_defer_async(*({} for _ in range(min(args.batch_size, n - start))))

        async with await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as poll:
            cur = await poll.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'"
            )
            row = await cur.fetchone()
            if row is None or row[0] != n:
                raise BenchError(f"expected {n} todo jobs before the worker, found {row}")
            if args.analyze:
                # procrastinate_fetch_job_v2 is PL/pgSQL, so its query runs as a cached
                # generic plan. On a table that was never analyzed the planner guesses ~1 todo
                # row and picks "bitmap scan all todo rows + sort" for every single fetch, which
                # costs O(queued jobs) per job. A server with autovacuum on analyzes a freshly
                # filled table on its own; the benchmark's may not (or not in time), so it is
                # done here, before the clock starts, with the CHECKPOINT every drain gets.
                await poll.execute("VACUUM (ANALYZE) procrastinate_jobs")
                await poll.execute("CHECKPOINT")

            # wait=False: "the worker will terminate as soon as it has caught up with the
            # queues", which is exactly a drain; the stop is still decided by our own polling.
            began = time.perf_counter()
            worker = asyncio.create_task(app.run_worker_async(**worker_options(args, wait=False)))
            try:
                wall = await wait_until_drained(poll, worker, n, began)
            finally:
                await stop_worker(worker)
            # First start to last success by the database's clock (Procrastinate's own event
            # log), as JQS's drains are timed from the first claim to the last completion.
            cur = await poll.execute(
                "SELECT extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded') "
                "- min(at) FILTER (WHERE type = 'started')) FROM procrastinate_events"
            )
            row = await cur.fetchone()
            seconds = float(row[0]) if row is not None and row[0] is not None else wall

    return {
        "system": "procrastinate",
        "version": procrastinate.__version__,
        "mode": "drain",
        "jobs": n,
        "seconds": round(seconds, 3),
        "wall_seconds": round(wall, 3),
        "jobs_per_s": round(n / seconds, 1),
        "settings": settings_text(args, wait=False)
        + f", jobs pre-inserted with batch_defer_async (chunks of {args.batch_size})"
        + (", VACUUM ANALYZE + CHECKPOINT before start" if args.analyze else ", no ANALYZE"),
    }


async def wait_until_drained(
    poll: psycopg.AsyncConnection[Any], worker: asyncio.Task[None], n: int, began: float
) -> float:
    """Poll every 20 ms; return the seconds from `began` until N jobs are `succeeded`."""
    while True:
        # A wait=False worker exits by itself once it finds the queue empty, so it having
        # exited is only an error if it had already done so before a poll that saw jobs left.
        worker_was_done = worker.done()
        cur = await poll.execute(PENDING_SQL)
        if await cur.fetchone() is None:
            cur = await poll.execute(SUCCEEDED_SQL)
            row = await cur.fetchone()
            elapsed = time.perf_counter() - began
            succeeded = row[0] if row is not None else 0
            if succeeded != n:
                raise BenchError(f"queue is empty but only {succeeded}/{n} jobs succeeded")
            return elapsed
        if worker_was_done:
            check_worker_alive(worker)
        await asyncio.sleep(POLL_INTERVAL_S)


# ------------------------------------------------------------------------------------- latency


async def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    n: int = args.jobs
    rate: float = args.rate
    starts: dict[int, float] = {}
    stamps = Path(args.stamps or f"/tmp/procrastinate-stamps-{os.getpid()}.txt")
    worker_app = make_app(args.dsn, args.concurrency + 1)

    async def record_start(context: procrastinate.JobContext) -> None:
        t_start = time.time()  # first statement: the moment the task body begins
        assert context.job.id is not None
        starts[context.job.id] = t_start

    worker_app.task(name=TASK_NAME, pass_context=True)(record_start)

    async with worker_app.open_async():
        await reset_and_apply_schema(args.dsn, worker_app)
        worker = asyncio.create_task(worker_app.run_worker_async(**worker_options(args, wait=True)))
        try:
            await asyncio.sleep(WORKER_WARMUP_S)
            check_worker_alive(worker)
            producer = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--dsn",
                args.dsn,
                "--mode",
                "produce",
                "--rate",
                str(rate),
                "--jobs",
                str(n),
                "--producer-pool",
                str(args.producer_pool),
                "--stamps",
                str(stamps),
            )
            while producer.returncode is None:
                check_worker_alive(worker)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(producer.wait(), 1.0)
            if producer.returncode != 0:
                raise BenchError("the producer failed")
            while len(starts) < n:
                check_worker_alive(worker)
                await asyncio.sleep(POLL_INTERVAL_S)
        finally:
            await stop_worker(worker)

    sent: dict[int, float] = {}
    committed: dict[int, float] = {}
    for line in stamps.read_text().splitlines():
        job_id, at_send, at_commit = line.split()
        sent[int(job_id)], committed[int(job_id)] = float(at_send), float(at_commit)
    stamps.unlink()
    missing = committed.keys() - starts.keys()
    if len(committed) != n or missing:
        raise BenchError(f"{len(committed)} commits recorded, {len(missing)} never started")
    return {
        "system": "procrastinate",
        "version": procrastinate.__version__,
        "mode": "latency",
        "rate": rate,
        "jobs": n,
        "latencies_ms": [round((starts[i] - committed[i]) * 1000, 4) for i in committed],
        "send_to_start_ms": [round((starts[i] - sent[i]) * 1000, 4) for i in committed],
        "window": [min(sent.values()), max(starts.values())],
        "achieved_rate": round(n / (max(committed.values()) - min(sent.values())), 1),
        "settings": settings_text(args, wait=True)
        + f", producer process: its own App, pool={args.producer_pool}, 1 defer_async per job",
    }


async def run_producer(args: argparse.Namespace) -> None:
    """Defer open-loop by task name; write "job_id t_send t_commit" lines to --stamps."""
    app = make_app(args.dsn, args.producer_pool)
    lines: list[str] = []
    async with app.open_async():
        deferrer = app.configure_task(TASK_NAME)

        async def defer_one(_: int) -> None:
            began = time.time()
            job_id = await deferrer.defer_async()  # returns once its transaction committed
            lines.append(f"{job_id} {began:.6f} {time.time():.6f}\n")

        await paced(args.jobs, args.rate, defer_one)
    Path(args.stamps).write_text("".join(lines))


# ---------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dsn", required=True, help="database for this run (will be reset)")
    parser.add_argument("--mode", choices=("drain", "latency", "produce"), required=True)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=200.0, help="latency: defers per second")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--producer-pool", type=int, default=PRODUCER_POOL_SIZE)
    parser.add_argument("--stamps", default=None, help="produce: where to write the stamps")
    parser.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="drain: skip ANALYZE of the freshly filled jobs table before the worker starts",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="hard limit in seconds (default: latency N/rate + 60, drain 60 + N/100)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.rate <= 0 or args.concurrency < 1 or args.batch_size < 1:
        parser.error("--jobs, --rate, --concurrency and --batch-size must be positive")
    return args


def start_watchdog(seconds: float) -> None:
    """Kill the process if even the asyncio timeout and clean-up cannot end it in time."""

    def expire() -> None:
        print(f"procrastinate_bench: hard timeout after {seconds:.0f}s", file=sys.stderr)
        sys.stderr.flush()
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


async def amain(args: argparse.Namespace, budget: float) -> dict[str, Any]:
    # Leave a few seconds of the budget for closing pools and stopping the worker.
    async with asyncio.timeout(max(1.0, budget - 5.0)):
        if args.mode == "drain":
            return await run_drain(args)
        return await run_latency(args)


def main() -> int:
    args = parse_args()
    if args.mode == "produce":
        asyncio.run(run_producer(args))
        return 0
    if args.timeout is not None:
        budget = args.timeout
    elif args.mode == "latency":
        budget = args.jobs / args.rate + 60.0
    else:
        budget = 60.0 + args.jobs / 100.0
    start_watchdog(budget)
    log(f"procrastinate {procrastinate.__version__}, mode={args.mode}, budget {budget:.0f}s")
    try:
        result = asyncio.run(amain(args, budget))
    except TimeoutError:
        log(f"ERROR: run did not finish within {budget:.0f}s")
        return 2
    except BenchError as exc:
        log(f"ERROR: {exc}")
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
