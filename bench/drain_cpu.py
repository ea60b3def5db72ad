"""Where a drain's CPU goes, per job: PostgreSQL's processes and the worker's, by schema.

    python -m bench.drain_cpu                          # the schema as migrated
    python -m bench.drain_cpu --variant "name=SQL"     # and the same after SQL, alternating
    python -m bench.drain_cpu --task noop --task fail_once
                                                       # each drain with each task, alternating

Throughput alone is a poor guide to a schema change on a 2-core machine: single drains vary
by a fifth. The CPU time every PostgreSQL process spends per job (backends, autovacuum,
WAL writer, checkpointer) varies much less, and it is what an index on the hot path costs.
On a server that other work shares, that total counts the others' backends too: the CPU of
the drain's own sessions (the backends connected to its database) counts only the drain.
Each variant runs in a fresh database: the migrations, then its SQL, then the drain.

`--task fail_once` drains jobs that ask for a retry on their first attempt and succeed on
the second (bench/tasks.py): its jobs/s are timed from the first attempt's outcome, as the
retry row of `make bench` times them, and so are the other tasks' when it is among them.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
from pathlib import Path

import asyncpg
import psutil

from bench.common import Server, jqs
from bench.scenarios import Context, _drain_times, _fill, _wait_done


async def _postmaster(dsn: str) -> psutil.Process:
    """The server's postmaster: the parent of any backend (a local server only)."""
    conn = await asyncpg.connect(dsn)
    try:  # asked while the backend lives: once the connection closes, it is gone
        parent = psutil.Process(int(await conn.fetchval("SELECT pg_backend_pid()"))).parent()
    finally:
        await conn.close()
    if parent is None:
        raise RuntimeError("cannot find the PostgreSQL server's process")
    return parent


def _server_cpu(postmaster: psutil.Process) -> float:
    """CPU seconds of the server so far: the postmaster, the children it has reaped (exited
    backends) and those still running."""
    times = postmaster.cpu_times()
    total: float = times.user + times.system + times.children_user + times.children_system
    for child in postmaster.children():
        try:
            child_times = child.cpu_times()
        except psutil.Error:  # exited meanwhile: counted among the reaped next time
            continue
        total += child_times.user + child_times.system
    return total


async def _sessions_cpu(dsn: str) -> float:
    """CPU seconds of the backends connected to `dsn`'s database but this one asking.

    Read while the worker still runs: its backends end with its connections.
    """
    conn = await asyncpg.connect(dsn)
    try:
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    total = 0.0
    for row in pids:
        try:
            times = psutil.Process(int(row["pid"])).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def drain(
    ctx: Context, postmaster: psutil.Process, sql: str, n: int, task: str = "noop"
) -> dict[str, float]:
    """One drain of n jobs of `task` in a fresh database, after `sql`."""
    dsn = await ctx.server.fresh()
    if sql:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
    after = await _fill(dsn, n, task)
    server0, worker0 = _server_cpu(postmaster), _children_cpu()
    proc = jqs(
        ["worker"],
        {"DATABASE_URL": dsn, "JQS_WORKER_CONCURRENCY": "100", "JQS_LOG_LEVEL": "warning"},
        ctx.log("drain_cpu"),
    )
    try:
        await _wait_done(dsn, n, 600, proc, after=after)
        sessions = await _sessions_cpu(dsn)
    finally:
        proc.stop()
    times = await _drain_times(dsn, after)
    return {
        "jobs_per_s": times.jobs_per_s_from_first_outcome,
        "server_us": (_server_cpu(postmaster) - server0) / n * 1e6,
        # The worker's sessions from their start: connecting is a small part of it.
        "sessions_us": sessions / n * 1e6,
        # The worker's whole life, start-up (imports, about half a second) included.
        "worker_us": (_children_cpu() - worker0) / n * 1e6,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--variant", action="append", default=[], help="name=SQL, repeatable")
    parser.add_argument(
        "--task",
        action="append",
        default=[],
        choices=["noop", "fail_once"],
        help="the jobs' task (bench/tasks.py), repeatable; default noop",
    )
    parser.add_argument("--dsn", default=None, help="a local PostgreSQL (default: embedded)")
    args = parser.parse_args()
    variants = {"as migrated": ""}
    for spec in args.variant:
        name, _, sql = spec.partition("=")
        variants[name] = sql
    tasks = args.task or ["noop"]
    kinds = [(name, task) for name in variants for task in tasks]
    server = Server(args.dsn)
    server.start()
    try:
        ctx = Context(server, Path(tempfile.mkdtemp(prefix="jqs-drain-cpu-")), quick=False)
        postmaster = await _postmaster(server.dsn)
        runs: dict[tuple[str, str], list[dict[str, float]]] = {kind: [] for kind in kinds}
        for _ in range(args.rounds):  # alternating: drift in the machine hits every variant
            for name, task in kinds:
                run = await drain(ctx, postmaster, variants[name], args.jobs, task)
                runs[name, task].append(run)
                print(
                    f"{name}, {task}: {run['jobs_per_s']:,.0f} jobs/s, server "
                    f"{run['server_us']:.1f} us/job, sessions {run['sessions_us']:.1f} us/job, "
                    f"worker {run['worker_us']:.1f} us/job",
                    flush=True,
                )
    finally:
        await server.stop()
    print(f"\nmedians of {args.rounds} runs, {args.jobs:,} jobs each:")
    for (name, task), results in runs.items():
        medians = {key: statistics.median(r[key] for r in results) for key in results[0]}
        print(
            f"  {name}, {task}: {medians['jobs_per_s']:,.0f} jobs/s, server CPU "
            f"{medians['server_us']:.1f} us/job, sessions' CPU {medians['sessions_us']:.1f} "
            f"us/job, worker CPU {medians['worker_us']:.1f} us/job"
        )


if __name__ == "__main__":
    asyncio.run(main())
