"""Drain throughput of 1..N `jqs worker` processes sharing one PostgreSQL.

    python -m bench.scale_workers --jobs 20000 --workers 1,2,3

Starts its own embedded PostgreSQL (or makes a database of its own on the server --dsn
names, dropped at the end), and for each worker count: inserts --jobs no-op jobs, starts
that many `jqs worker` processes, and times from their start until every job is completed.
Prints a Markdown table. Worker start-up (about half a second of Python imports) is inside
the measured time, as it would be in a deployment scaling out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import sys
import time

import asyncpg

from bench.common import REPO, Server


async def drain(dsn: str, jobs: int, workers: int, concurrency: int) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE jobs")
        await conn.execute(
            'INSERT INTO jobs (payload) SELECT \'{"task": "noop"}\'::jsonb '
            "FROM generate_series(1, $1)",
            jobs,
        )
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "JQS_TASKS": "bench.tasks",
            "JQS_DEMO_TASKS": "false",
            "JQS_WORKER_CONCURRENCY": str(concurrency),
            "JQS_LOG_LEVEL": "warning",
            "PYTHONPATH": str(REPO),
        }
        began = time.perf_counter()
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "jqs", "worker", env=env, cwd=REPO
            )
            for _ in range(workers)
        ]
        try:
            # Polling the database is the measurement itself; there is no event to wait on.
            while await conn.fetchval("SELECT count(*) FROM jobs WHERE status <> 'completed'"):
                await asyncio.sleep(0.05)
            took = time.perf_counter() - began
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 30)
        return took
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--dsn", default=None, help="PostgreSQL to use (default: embedded)")
    args = parser.parse_args()
    server = Server(args.dsn)
    server.start()
    try:
        dsn = await server.fresh()  # migrated by `jqs migrate`
        conn = await asyncpg.connect(dsn)
        version = await conn.fetchval("SHOW server_version")
        commit = await conn.fetchval("SHOW synchronous_commit")
        await conn.close()
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; PostgreSQL {version}, synchronous_commit={commit}"
        )
        print(f"{args.jobs} no-op jobs, worker concurrency {args.concurrency}\n")
        print("| worker processes | seconds | jobs/s |")
        print("|---:|---:|---:|")
        for workers in (int(n) for n in args.workers.split(",")):
            took = await drain(dsn, args.jobs, workers, args.concurrency)
            print(f"| {workers} | {took:.2f} | {args.jobs / took:,.0f} |")
    finally:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
