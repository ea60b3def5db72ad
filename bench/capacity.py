"""How far one PostgreSQL primary goes with JQS, and whether the tables stay small under churn.

`make bench-capacity` (python -m bench.capacity) runs two parts and writes docs/capacity.md:

1. Capacity. One `jqs serve --no-worker` takes batches of jobs over HTTP as fast as a
   closed-loop producer sends them, while 1, then 2, `jqs worker` processes drain them. The
   producer holds the backlog between bounds, so what is measured is the rate at which jobs
   go in and come out together, steady state, after a warm-up. Each process's CPU, the
   server's, the machine's, the WAL written and what PostgreSQL's sessions were waiting on
   (sampled from pg_stat_activity) say where the limit is.
2. Soak. The best of those set-ups runs for SOAK_MINUTES at a fixed share of that capacity,
   with a short retention, so the pruner deletes as fast as jobs finish. Every minute it
   records the size of the jobs and job_events tables and their indexes, live and dead rows,
   autovacuum runs, the queue's depth and the rate jobs completed at.

It talks to JQS only as a user would: its CLI, its HTTP API and its documented tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import orjson

from bench.common import (
    REPO,
    Proc,
    Server,
    cpu_jiffies,
    cpu_times,
    free_port,
    jqs,
    machine,
    process_cpu,
    shown_args,
    steal_percent,
    wait_http,
)
from bench.http_load import Client
from bench.pacing import paced

BATCH = 100  # jobs per POST /jobs/batch
POSTERS = 4  # the producer's concurrent requests
BACKLOG = (2_000, 10_000)  # the producer pauses above the upper bound until below the lower
WARMUP_S = 15.0
WINDOW_S = 60.0
SOAK_MINUTES = 30.0
SOAK_SHARE = 0.3  # of the measured capacity: sustained, with room to spare
RETENTION_S = 300  # finished jobs kept 5 minutes in the soak: the pruner runs all along
PAYLOAD = {"task": "noop", "to": "user@example.com", "subject": "Hello"}


@dataclass
class CpuShare:
    """CPU seconds over a window: per part, and the machine's total."""

    parts: dict[str, float]
    machine_busy: float  # of the machine's CPU, 0..1
    cores: int
    seconds: float

    def other(self) -> float:
        """The machine's busy share that none of the parts account for."""
        return max(0.0, self.machine_busy - sum(self.share(part) for part in self.parts))

    def share(self, part: str) -> float:
        total = self.cores * self.seconds
        return self.parts.get(part, 0.0) / total if total else 0.0


@dataclass
class CapacityRun:
    workers: int
    completed_per_s: float
    submitted_per_s: float
    wal_bytes_per_job: float
    cpu: CpuShare
    waits: dict[str, float]  # share of sampled active sessions per wait ("CPU" when none)
    backlog_end: int


@dataclass
class Sample:
    minute: float
    submitted_per_s: float
    completed_per_s: float
    queued: int
    jobs_heap: int
    jobs_indexes: int
    jobs_total: int
    events_total: int
    live: int
    dead: int
    autovacuums: int


@dataclass
class Report:
    facts: dict[str, str]
    server: dict[str, str]
    runs: list[CapacityRun] = field(default_factory=list)
    soak_rate: float = 0.0
    soak_minutes: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    soak_steal: float = 0.0
    soak_busy: float = 0.0
    soak_cpu: CpuShare | None = None
    window: float = WINDOW_S


def _postgres_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL process on this machine (the bench's
    server's sessions and background workers; others' idle sessions add next to nothing)."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as fh:
                if not fh.read().startswith(("postgres", "postmaster")):
                    continue
            total += process_cpu(int(entry.name))
        except (OSError, ValueError):
            continue
    return total


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _busy(before: list[int], after: list[int]) -> float:
    """The machine's CPU in use between two /proc/stat readings, 0..1 (idle and iowait are
    not in use)."""
    delta = [a - b for a, b in zip(after, before, strict=True)]
    total = sum(delta)
    idle = delta[3] + delta[4]
    return (total - idle) / total if total else 0.0


class Meter:
    """CPU of each part, and of the whole machine, between start() and stop()."""

    def __init__(self, procs: dict[str, list[Proc]]) -> None:
        self._procs = procs
        self._t0 = 0.0
        self._stat0: list[int] = []
        self._used0: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        parts = {
            name: sum(process_cpu(p.popen.pid) for p in procs if p.popen.poll() is None)
            for name, procs in self._procs.items()
        }
        parts["PostgreSQL"] = _postgres_cpu()
        parts["load generator"] = _own_cpu()
        return parts

    def start(self) -> None:
        self._t0, self._stat0, self._used0 = time.monotonic(), cpu_times(), self._read()

    def stop(self) -> CpuShare:
        used = self._read()
        return CpuShare(
            {k: used[k] - self._used0.get(k, 0.0) for k in used},
            _busy(self._stat0, cpu_times()),
            os.cpu_count() or 1,
            time.monotonic() - self._t0,
        )


@dataclass
class Setup:
    """A running JQS: one API process and some worker processes on one database."""

    dsn: str
    port: int
    api: Proc
    workers: list[Proc]

    def stop(self) -> None:
        for proc in [*self.workers, self.api]:
            proc.stop()


async def _start(dsn: str, workers: int, logs: Path, env: dict[str, str]) -> Setup:
    port = free_port()
    base = {"DATABASE_URL": dsn, "JQS_LOG_LEVEL": "warning", **env}
    api = jqs(["serve", "--no-worker"], {**base, "PORT": str(port)}, logs / "api.log")
    procs = [
        jqs(["worker"], {**base, "JQS_WORKER_CONCURRENCY": "100"}, logs / f"worker{i}.log")
        for i in range(workers)
    ]
    await wait_http(f"http://127.0.0.1:{port}/health")
    return Setup(dsn, port, api, procs)


async def _last_id(conn: asyncpg.Connection) -> int:
    """The newest job's id: ids are handed out in order, so its growth counts submissions."""
    return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM jobs"))


async def _queued(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'queued'"))


async def _completed_between(conn: asyncpg.Connection, t0: float, t1: float) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM jobs WHERE status = 'completed' "
            "AND finished_at >= to_timestamp($1) AND finished_at < to_timestamp($2)",
            t0,
            t1,
        )
    )


async def _flat_out(setup: Setup, stop: asyncio.Event) -> int:
    """Send batches as fast as they are taken while the backlog is under its bound; returns
    the jobs accepted."""
    body = orjson.dumps({"jobs": [{"payload": PAYLOAD}] * BATCH})
    client = Client("127.0.0.1", setup.port, size=POSTERS)
    await client.open()
    accepted = 0
    paused = False
    conn = await asyncpg.connect(setup.dsn)

    async def watch() -> None:
        nonlocal paused
        while not stop.is_set():
            depth = await _queued(conn)
            paused = depth > BACKLOG[1] or (paused and depth > BACKLOG[0])
            await asyncio.sleep(0.2)

    async def post() -> None:
        nonlocal accepted
        while not stop.is_set():
            if paused:
                await asyncio.sleep(0.05)
                continue
            status, answer = await client.post("/jobs/batch", body)
            if status != 201:
                raise RuntimeError(f"POST /jobs/batch answered {status}: {answer[:300]!r}")
            accepted += BATCH

    try:
        await asyncio.gather(watch(), *(post() for _ in range(POSTERS)))
    finally:
        await client.close()
        await conn.close()
    return accepted


async def _waits(dsn: str, stop: asyncio.Event) -> dict[str, float]:
    """What the bench database's active sessions were waiting on, sampled every 50 ms."""
    counts: dict[str, int] = {}
    conn = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            rows = await conn.fetch(
                "SELECT coalesce(wait_event_type || ':' || wait_event, 'no wait') AS what "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()"
            )
            for row in rows:
                counts[row["what"]] = counts.get(row["what"], 0) + 1
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}


async def _wal_lsn(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))


async def capacity(server: Server, workers: int, logs: Path, *, window: float) -> CapacityRun:
    """Jobs in and out per second, steady state, with `workers` worker processes."""
    dsn = await server.fresh()
    setup = await _start(dsn, workers, logs / f"capacity_{workers}", {})
    stop = asyncio.Event()
    conn = await asyncpg.connect(dsn)
    try:
        producer = asyncio.create_task(_flat_out(setup, stop))
        await asyncio.sleep(WARMUP_S)
        meter = Meter({"JQS API": [setup.api], "JQS workers": setup.workers})
        done_waits = asyncio.Event()
        waits = asyncio.create_task(_waits(dsn, done_waits))
        lsn0 = await _wal_lsn(conn)
        created0 = await _last_id(conn)
        t0 = float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())"))
        meter.start()
        await asyncio.sleep(window)
        cpu = meter.stop()
        t1 = float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())"))
        lsn1 = await _wal_lsn(conn)
        created1 = await _last_id(conn)
        done_waits.set()
        stop.set()
        await producer
        shares = await waits
        completed = await _completed_between(conn, t0, t1)
        backlog = await _queued(conn)
    finally:
        stop.set()
        await conn.close()
        setup.stop()
    return CapacityRun(
        workers,
        completed / (t1 - t0),
        (created1 - created0) / (t1 - t0),
        (lsn1 - lsn0) / max(completed, 1),
        cpu,
        shares,
        backlog,
    )


_SIZES = """
SELECT pg_relation_size('jobs') AS heap, pg_indexes_size('jobs') AS indexes,
       pg_total_relation_size('jobs') AS total,
       pg_total_relation_size('job_events') AS events,
       s.n_live_tup AS live, s.n_dead_tup AS dead, s.autovacuum_count AS autovacuums
FROM pg_stat_user_tables AS s WHERE s.relname = 'jobs'
"""


async def soak(
    server: Server, workers: int, rate: float, minutes: float, logs: Path, report: Report
) -> None:
    """`rate` jobs/s for `minutes`, in batches paced evenly; a sample every minute."""
    dsn = await server.fresh()
    env = {"JQS_RETENTION": str(RETENTION_S), "JQS_RETENTION_INTERVAL": "30"}
    setup = await _start(dsn, workers, logs / "soak", env)
    per_request = 10
    body = orjson.dumps({"jobs": [{"payload": PAYLOAD}] * per_request})
    client = Client("127.0.0.1", setup.port, size=16)
    await client.open()
    conn = await asyncpg.connect(dsn)
    stat0, steal0 = cpu_times(), cpu_jiffies()
    meter = Meter({"JQS API": [setup.api], "JQS workers": setup.workers})
    meter.start()
    began = time.monotonic()
    failures = 0

    async def send(_: int) -> None:
        nonlocal failures
        status, _answer = await client.post("/jobs/batch", body)
        failures += status != 201

    async def sample() -> None:
        last = float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())"))
        last_id = await _last_id(conn)
        while True:
            await asyncio.sleep(60)
            now = float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())"))
            now_id = await _last_id(conn)
            row = await conn.fetchrow(_SIZES)
            assert row is not None
            report.samples.append(
                Sample(
                    (time.monotonic() - began) / 60,
                    (now_id - last_id) / (now - last),
                    await _completed_between(conn, last, now) / (now - last),
                    await _queued(conn),
                    row["heap"],
                    row["indexes"],
                    row["total"],
                    row["events"],
                    row["live"],
                    row["dead"],
                    row["autovacuums"],
                )
            )
            print(f"   soak {report.samples[-1]}", flush=True)
            last, last_id = now, now_id

    sampler = asyncio.create_task(sample())
    try:
        requests = int(minutes * 60 * rate / per_request)
        await paced(requests, rate / per_request, send)
        await asyncio.sleep(1)  # the last minute's sample
        report.soak_cpu = meter.stop()
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        await client.close()
        await conn.close()
        setup.stop()
    if failures:
        raise RuntimeError(f"{failures} batches refused during the soak")
    report.soak_busy = _busy(stat0, cpu_times())
    report.soak_steal = steal_percent(steal0, cpu_jiffies())


def _mb(n: int) -> str:
    return f"{n / 1_048_576:,.1f}"


def _bottleneck(run: CapacityRun) -> str:
    cpu = run.cpu
    parts = sorted(
        ((name, cpu.share(name)) for name in cpu.parts), key=lambda kv: kv[1], reverse=True
    )
    shares = ", ".join(f"{name} {share:.0%}" for name, share in parts)
    top_wait = next((w for w in run.waits if w != "no wait"), None)
    if cpu.machine_busy >= 0.9:
        return (
            f"the machine's CPU: its {cpu.cores} cores were {cpu.machine_busy:.0%} busy "
            f"({shares} of them). {parts[0][0]} is the largest part"
        )
    waited = f"; the sessions' main wait: {top_wait}" if top_wait else ""
    return f"not the CPU ({cpu.machine_busy:.0%} busy: {shares}){waited}"


def write(report: Report, out: Path, command: str) -> None:
    f, s = report.facts, report.server
    lines = [
        "# Capacity of one PostgreSQL primary",
        "",
        f"Written by `{command}` on {time.strftime('%Y-%m-%d')}. Machine: {f['cpu']}, "
        f"{f['cores']} cores, Python {f['python']}. PostgreSQL {s['postgres']}, {s['where']}; "
        f"{s['settings']}. JQS, its workers, PostgreSQL and the load generator share the "
        "machine.",
        "",
        "## Jobs per second",
        "",
        f"One `jqs serve --no-worker` takes `POST /jobs/batch` requests of {BATCH} jobs "
        f"({POSTERS} at a time, the queue held between {BACKLOG[0]:,} and {BACKLOG[1]:,} "
        f"queued jobs) while `jqs worker` processes (concurrency 100 each) run them. Measured "
        f"over {report.window:g} s after a {WARMUP_S:.0f} s warm-up; CPU is the share of the "
        "machine's total.",
        "",
        "| worker processes | completed jobs/s | submitted jobs/s | WAL per job | machine CPU "
        "busy | PostgreSQL | JQS workers | JQS API | load generator | anything else | what "
        "PostgreSQL's active sessions waited on |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report.runs:
        waits = ", ".join(f"{k} {v:.0%}" for k, v in list(run.waits.items())[:3])
        lines.append(
            f"| {run.workers} | {run.completed_per_s:,.0f} | {run.submitted_per_s:,.0f} | "
            f"{run.wal_bytes_per_job:,.0f} B | {run.cpu.machine_busy:.0%} | "
            f"{run.cpu.share('PostgreSQL'):.0%} | {run.cpu.share('JQS workers'):.0%} | "
            f"{run.cpu.share('JQS API'):.0%} | {run.cpu.share('load generator'):.0%} | "
            f"{run.cpu.other():.0%} | {waits} |"
        )
    if report.runs:
        best = max(report.runs, key=lambda r: r.completed_per_s)
        lines += [
            "",
            f"Best: {best.completed_per_s:,.0f} jobs/s in and out with {best.workers} worker "
            f"process(es). The limit: {_bottleneck(best)}.",
        ]
    if report.samples:
        lines += [
            "",
            "## Soak: does the table stay small under churn?",
            "",
            f"{report.soak_rate:,.0f} jobs/s offered for {report.soak_minutes:g} minutes "
            f"({SOAK_SHARE:.0%} of the best rate above), in `POST /jobs/batch` requests of 10 "
            f"paced evenly; JQS_RETENTION={RETENTION_S} (finished jobs deleted after "
            f"{RETENTION_S // 60} minutes), autovacuum at the server's settings. Machine CPU "
            f"busy over the soak: {report.soak_busy:.0%}"
            + (
                f" (PostgreSQL {report.soak_cpu.share('PostgreSQL'):.0%}, JQS "
                f"{report.soak_cpu.share('JQS API') + report.soak_cpu.share('JQS workers'):.0%}"
                f", anything else {report.soak_cpu.other():.0%})"
                if report.soak_cpu is not None
                else ""
            )
            + (f"; stolen by the hypervisor: {report.soak_steal:.1f}%" if report.soak_steal else "")
            + ".",
            "",
            "| minute | submitted jobs/s | completed jobs/s | queued | jobs heap (MB) | jobs "
            "indexes (MB) | jobs total (MB) | job_events total (MB) | live rows | dead rows | "
            "autovacuums of jobs |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        shown = [
            x
            for i, x in enumerate(report.samples)
            if i in (0, len(report.samples) - 1) or round(x.minute) % 5 == 0
        ]
        for x in shown:
            lines.append(
                f"| {x.minute:.0f} | {x.submitted_per_s:,.0f} | {x.completed_per_s:,.0f} | "
                f"{x.queued:,} | "
                f"{_mb(x.jobs_heap)} | {_mb(x.jobs_indexes)} | {_mb(x.jobs_total)} | "
                f"{_mb(x.events_total)} | {x.live:,} | {x.dead:,} | {x.autovacuums} |"
            )
        half = [x for x in report.samples if x.minute >= report.soak_minutes / 2]
        if len(half) >= 2:
            a, b = half[0], half[-1]
            lines += [
                "",
                f"Over the second half of the soak (minute {a.minute:.0f} to {b.minute:.0f}): "
                f"jobs table {_mb(a.jobs_total)} MB to {_mb(b.jobs_total)} MB, job_events "
                f"{_mb(a.events_total)} MB to {_mb(b.events_total)} MB, live rows {a.live:,} to "
                f"{b.live:,}, dead rows {a.dead:,} to {b.dead:,}, completing "
                f"{a.completed_per_s:,.0f} to {b.completed_per_s:,.0f} jobs/s.",
            ]
    out.write_text("\n".join(lines) + "\n")


async def main() -> None:
    # SIGINT or SIGTERM: stop the run, and with it every process and server it started.
    this = asyncio.current_task()
    assert this is not None
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, this.cancel)
    parser = argparse.ArgumentParser(description="JQS capacity and soak")
    parser.add_argument("--dsn", default=None, help="an existing server (default: embedded)")
    parser.add_argument("--workers", default="1,2", help="worker process counts to try")
    parser.add_argument("--window", type=float, default=WINDOW_S)
    parser.add_argument("--soak-minutes", type=float, default=SOAK_MINUTES)
    parser.add_argument("--out", default=str(REPO / "docs" / "capacity.md"))
    args = parser.parse_args()
    server = Server(args.dsn)
    logs = Path(tempfile.mkdtemp(prefix="jqs-capacity-logs-"))
    server.start()
    try:
        report = Report(machine(), await server.facts(), window=args.window)
        for workers in (int(w) for w in args.workers.split(",")):
            print(f"== capacity, {workers} worker process(es)", flush=True)
            (logs / f"capacity_{workers}").mkdir()
            run = await capacity(server, workers, logs, window=args.window)
            print(f"   {run}", flush=True)
            report.runs.append(run)
        if args.soak_minutes > 0 and report.runs:
            best = max(report.runs, key=lambda r: r.completed_per_s)
            report.soak_rate = round(best.completed_per_s * SOAK_SHARE, -1)
            report.soak_minutes = args.soak_minutes
            print(
                f"== soak, {report.soak_rate:,.0f} jobs/s for {args.soak_minutes} min", flush=True
            )
            (logs / "soak").mkdir()
            await soak(server, best.workers, report.soak_rate, args.soak_minutes, logs, report)
    finally:
        await server.stop()
    command = " ".join(["python -m bench.capacity", *shown_args()])
    write(report, Path(args.out), command)
    print(
        f"wrote {args.out}; logs in {logs}; median soak rate "
        f"{statistics.median([x.completed_per_s for x in report.samples] or [0]):,.0f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
