"""The benchmark scenarios. Each measures JQS and its baseline in the same run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import orjson
import psutil

from bench import raw_queue, stalls
from bench.common import (
    REPO,
    Proc,
    Server,
    free_port,
    jqs,
    percentile,
    start,
    wait_http,
    wrk_post,
)
from bench.http_load import Client, open_loop

# Drains are repeated (alternating with their baseline) and the medians compared: single
# drains of a few seconds vary by a fifth on a 2-core machine.
DRAIN_ROUNDS = 3
SINGLE_ROUNDS = 3
BATCH_ROUNDS = 5
LATENCY_ROUNDS = 3
PAYLOAD = {"task": "noop", "to": "user@example.com", "subject": "Hello"}


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    value: float
    baseline: float
    unit: str
    baseline_name: str
    target: str = ""
    higher_is_better: bool = True
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


@dataclass
class Context:
    server: Server
    logs: Path
    quick: bool
    rows: list[Row] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


async def _count(dsn: str, where: str = "TRUE") -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM jobs WHERE {where}"))
    finally:
        await conn.close()


async def single_post(ctx: Context) -> None:
    """1. Single POST /jobs under wrk: JQS vs bare Starlette + asyncpg, one INSERT each.

    The three servers (JQS logging every request, JQS at warning, the baseline) stay up
    and take turns for SINGLE_ROUNDS rounds, each going first in turn; the medians are
    compared. One run of each, minutes apart, followed the machine's drift: the ratio of
    the same code ranged from 1.5x to 2.8x between runs of `make bench` on one day.
    """
    seconds, connections = (5, 64) if ctx.quick else (10, 64)
    rounds = 1 if ctx.quick else SINGLE_ROUNDS
    body = json.dumps(PAYLOAD)
    urls: dict[str, str] = {}
    dsns: list[str] = []  # each server's own database, kept while the next is made
    procs: list[Proc] = []
    try:
        for name, level in (("jqs", "info"), ("jqs_quiet", "warning")):
            dsn, port = await ctx.server.fresh(keep=dsns), free_port()
            dsns.append(dsn)
            procs.append(
                jqs(
                    ["serve", "--no-worker"],
                    {"DATABASE_URL": dsn, "PORT": str(port), "JQS_LOG_LEVEL": level},
                    ctx.log(f"single_post_{name}"),
                )
            )
            urls[name] = f"http://127.0.0.1:{port}/jobs"
            await wait_http(f"http://127.0.0.1:{port}/health")
        dsn, port = await ctx.server.fresh(keep=dsns), free_port()
        procs.append(start_baseline(dsn, port, ctx.log("single_post_baseline")))
        urls["baseline"] = f"http://127.0.0.1:{port}/jobs"
        await wait_http(urls["baseline"])
        for url in urls.values():
            wrk_post(url, body, seconds=2, connections=connections)  # warm-up
        runs: dict[str, list[float]] = {name: [] for name in urls}
        names = list(urls)
        for r in range(rounds):
            for name in names[r % 3 :] + names[: r % 3]:
                runs[name].append(
                    await asyncio.to_thread(
                        wrk_post, urls[name], body, seconds=seconds, connections=connections
                    )
                )
    finally:
        for proc in procs:
            proc.stop()
    ctx.extra["single_runs"] = runs
    baseline = statistics.median(runs["baseline"])
    note = (
        f"wrk, {connections} connections, {seconds}s a run; median of {rounds} runs each, "
        "taking turns; JQS logs every request at info"
    )
    ctx.rows.append(
        Row(
            "single POST /jobs (requests/s)",
            statistics.median(runs["jqs"]),
            baseline,
            "req/s",
            "Starlette+asyncpg, 1 INSERT/request",
            ">= 1.5x",
            note=note,
        )
    )
    ctx.rows.append(
        Row(
            "single POST /jobs, JQS_LOG_LEVEL=warning (requests/s)",
            statistics.median(runs["jqs_quiet"]),
            baseline,
            "req/s",
            "Starlette+asyncpg, 1 INSERT/request",
            note="same load, no per-request logs",
        )
    )


def start_baseline(dsn: str, port: int, log: Path) -> Proc:
    """The bare Starlette + asyncpg endpoint, served by uvicorn as JQS is."""
    return start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.baseline_app:app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ],
        {"DATABASE_URL": dsn},
        log,
    )


async def batch_post(ctx: Context) -> None:
    """2. POST /jobs/batch with 500 jobs per request vs raw asyncpg unnest INSERTs.

    Each run lasts a second or two, so JQS and the baseline alternate for BATCH_ROUNDS
    rounds and their medians are compared: single runs follow the machine's drift.
    """
    batches, size, concurrency = (10, 500, 4) if ctx.quick else (200, 500, 4)
    rounds = 1 if ctx.quick else BATCH_ROUNDS
    body = orjson.dumps({"jobs": [{"payload": PAYLOAD} for _ in range(size)]})
    payloads = [orjson.dumps(PAYLOAD)] * size
    dsn, port = await ctx.server.fresh(), free_port()
    raw_dsn = await ctx.server.fresh(keep=[dsn])
    proc = jqs(
        ["serve", "--no-worker"],
        {"DATABASE_URL": dsn, "PORT": str(port), "JQS_LOG_LEVEL": "warning"},
        ctx.log("batch_post"),
    )
    client = Client("127.0.0.1", port, size=concurrency)  # httpx would cost more than JQS
    runs: dict[str, list[float]] = {"jqs": [], "raw": []}
    try:
        await wait_http(f"http://127.0.0.1:{port}/health")
        await client.open()

        async def one_client(todo: list[int]) -> None:
            while todo:
                todo.pop()
                status, answer = await client.post("/jobs/batch", body)
                assert status == 201, answer[:500]

        for _ in range(rounds):  # both tables grow alike, round by round
            todo = list(range(batches))
            began = time.perf_counter()
            await asyncio.gather(*(one_client(todo) for _ in range(concurrency)))
            runs["jqs"].append(batches * size / (time.perf_counter() - began))
            runs["raw"].append(
                await raw_queue.insert_batches(raw_dsn, payloads, batches, concurrency)
            )
    finally:
        await client.close()
        proc.stop()
    assert await _count(dsn) == rounds * batches * size
    ctx.extra["batch_runs"] = runs
    ctx.rows.append(
        Row(
            "batch POST, 500 jobs/request (jobs/s)",
            statistics.median(runs["jqs"]),
            statistics.median(runs["raw"]),
            "jobs/s",
            "raw asyncpg unnest INSERT",
            ">= 0.6x",
            note=f"{batches} requests, {concurrency} keep-alive connections "
            f"(bench/http_load.py); median of {rounds} alternating runs each",
        )
    )


async def _fill(dsn: str, n: int) -> int:
    """Queue n no-op jobs; returns the highest id before them."""
    conn = await asyncpg.connect(dsn)
    try:
        before = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM jobs"))
        await conn.execute(
            "INSERT INTO jobs (payload) SELECT $1::jsonb FROM generate_series(1, $2)",
            orjson.dumps({"task": "noop"}).decode(),
            n,
        )
        # Every measurement starts from a vacuumed table (no dead index entries left by an
        # earlier run in the same database) whose dirty pages are flushed, so neither a
        # checkpoint nor stale statistics land in the middle of it.
        await conn.execute("VACUUM (ANALYZE, INDEX_CLEANUP ON) jobs")
        await conn.execute("CHECKPOINT")
        return before
    finally:
        await conn.close()


async def _span(dsn: str, after: int = 0) -> float:
    """Seconds from the first claim to the last completion of the jobs after id `after`,
    by the database's clock."""
    conn = await asyncpg.connect(dsn)
    try:
        return float(
            await conn.fetchval(
                "SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM jobs "
                "WHERE id > $1",
                after,
            )
        )
    finally:
        await conn.close()


async def _wait_done(
    dsn: str, n: int, timeout: float, proc: Proc | None = None, *, after: int = 0
) -> None:
    """Wait until nothing is queued or running, then check that the n jobs (ids above
    `after`) all completed.

    One connection, and a poll that reads only the small partial indexes of queued and
    running jobs: counting completed rows every 100 ms would cost the database more as
    the drain goes on (and scan the whole history in the history scenario).
    """
    deadline = time.monotonic() + timeout
    conn = await asyncpg.connect(dsn)
    try:
        while await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued') "
            "OR EXISTS (SELECT 1 FROM jobs WHERE status = 'processing')"
        ):
            if proc is not None and proc.popen.poll() is not None:
                raise RuntimeError(f"the worker exited ({proc.popen.returncode}) early")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} jobs not completed within {timeout}s")
            await asyncio.sleep(0.1)
        done = await conn.fetchval(
            "SELECT count(*) FROM jobs WHERE id > $1 AND status = 'completed'", after
        )
    finally:
        await conn.close()
    if done != n:
        raise RuntimeError(f"{done} of {n} jobs completed")


async def jqs_drain(
    ctx: Context, dsn: str, n: int, name: str, *, log_level: str = "warning"
) -> float:
    """Queue n no-op jobs in `dsn`; jobs/s of one `jqs worker` (concurrency 100) draining them."""
    after = await _fill(dsn, n)
    proc = jqs(
        ["worker"],
        {"DATABASE_URL": dsn, "JQS_WORKER_CONCURRENCY": "100", "JQS_LOG_LEVEL": log_level},
        ctx.log(name),
    )
    try:
        await _wait_done(dsn, n, 600, proc, after=after)
    finally:
        proc.stop()
    return n / await _span(dsn, after)


async def drain(ctx: Context) -> None:
    """3. N queued no-op jobs drained by one `jqs worker` vs a raw claim/complete loop."""
    n = 10_000 if ctx.quick else 50_000
    runs: dict[str, list[float]] = {"jqs": [], "raw": []}
    pgqueuer: list[dict[str, object]] = []
    for round_no in range(DRAIN_ROUNDS):  # alternating: drift in the machine hits them all
        runs["jqs"].append(await jqs_drain(ctx, await ctx.server.fresh(), n, f"drain_{round_no}"))
        raw_dsn = await ctx.server.fresh()
        await _fill(raw_dsn, n)
        await raw_queue.drain(raw_dsn, 100)
        runs["raw"].append(n / await _span(raw_dsn))
        # PgQueuer's drains here too, so the JQS-to-PgQueuer ratio compares runs minutes
        # apart, not scenarios a quarter of an hour apart on a machine whose speed drifts.
        pgqueuer.append(
            await _other_run(ctx, "pgqueuer", f"drain_{round_no}", _other_drain_args("pgqueuer", n))
        )
    ctx.extra["pgqueuer_drains"] = pgqueuer
    # The same with the default log level (two JSON lines per job), for the report.
    ctx.extra["drain_info_logs"] = await jqs_drain(
        ctx, await ctx.server.fresh(), n, "drain_info", log_level="info"
    )
    ours, baseline = statistics.median(runs["jqs"]), statistics.median(runs["raw"])
    ctx.extra["raw_drain"] = baseline
    ctx.extra["drain_runs"] = runs
    ctx.rows.append(
        Row(
            f"drain {n:,} no-op jobs, one worker (jobs/s)",
            ours,
            baseline,
            "jobs/s",
            "raw asyncpg claim/complete, batches of 100",
            ">= 0.5x",
            note=f"worker concurrency 100, JQS_LOG_LEVEL=warning; median of {DRAIN_ROUNDS} "
            "runs each",
        )
    )


async def profile_drain(ctx: Context) -> None:
    """py-spy profile of one worker draining, to show where the time goes."""
    n = 20_000
    dsn = await ctx.server.fresh()
    await _fill(dsn, n)
    raw = Path(tempfile.mkstemp(suffix=".txt")[1])
    proc = start(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--format",
            "raw",
            "--rate",
            "250",
            "--output",
            str(raw),
            "--",
            sys.executable,
            "-m",
            "jqs",
            "worker",
        ],
        {
            "DATABASE_URL": dsn,
            "JQS_WORKER_CONCURRENCY": "100",
            "JQS_LOG_LEVEL": "warning",
            "JQS_TASKS": "bench.tasks",
            "JQS_DEMO_TASKS": "false",
        },
        ctx.log("profile"),
    )
    try:
        await _wait_done(dsn, n, 120, proc)
    finally:
        py_spy = psutil.Process(proc.popen.pid)
        for child in py_spy.children():
            child.send_signal(2)  # SIGINT to the worker: py-spy then writes its file
        proc.popen.wait(60)
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        if any("_find_and_load" in frame for frame in frames):
            continue  # start-up imports: not what a worker spends its life on
        leaf = frames[-1]
        for frame in reversed(frames):  # attribute time to the innermost frame of ours
            if "/jqs/" in frame or "asyncpg" in frame or "structlog" in frame:
                leaf = frame
                break
        own[_short(leaf)] += int(count)
        total += int(count)
    ctx.extra["profile"] = [(name, count / total) for name, count in own.most_common(12)]


def _short(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "src/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where.split(':')[0]})"


async def end_to_end(ctx: Context) -> None:
    """4. Jobs completed per second while they are being submitted over HTTP."""
    seconds = 5 if ctx.quick else 15
    body = json.dumps(PAYLOAD)
    dsn, port = await ctx.server.fresh(), free_port()
    proc = jqs(
        ["serve"],
        {
            "DATABASE_URL": dsn,
            "PORT": str(port),
            "JQS_LOG_LEVEL": "warning",
            "JQS_WORKER_CONCURRENCY": "100",
        },
        ctx.log("end_to_end"),
    )
    try:
        await wait_http(f"http://127.0.0.1:{port}/health")
        ours = await _completed_during(dsn, f"http://127.0.0.1:{port}/jobs", body, seconds)
    finally:
        proc.stop()
    dsn, port = await ctx.server.fresh(), free_port()
    api = start_baseline(dsn, port, ctx.log("end_to_end_baseline"))
    stop = asyncio.Event()
    consumer = asyncio.create_task(raw_queue.consume_until(dsn, stop))
    try:
        await wait_http(f"http://127.0.0.1:{port}/jobs")
        baseline = await _completed_during(dsn, f"http://127.0.0.1:{port}/jobs", body, seconds)
    finally:
        stop.set()
        await consumer
        api.stop()
    ctx.rows.append(
        Row(
            "end to end: completed while submitting (jobs/s)",
            ours,
            baseline,
            "jobs/s",
            "Starlette+asyncpg endpoint + raw claim/complete loop",
            note=f"wrk 64 connections for {seconds}s; one process each side",
        )
    )


async def _completed_during(dsn: str, url: str, body: str, seconds: int) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        began = await conn.fetchval("SELECT clock_timestamp()")
        await asyncio.to_thread(wrk_post, url, body, seconds=seconds, connections=64)
        ended = await conn.fetchval("SELECT clock_timestamp()")
        done = await conn.fetchval(
            "SELECT count(*) FROM jobs WHERE finished_at BETWEEN $1 AND $2", began, ended
        )
        return float(done) / (ended - began).total_seconds()
    finally:
        await conn.close()


async def pickup_latency(ctx: Context) -> None:
    """5. Commit-to-handler-start latency at 200 and 1,000 jobs/s, JQS vs raw LISTEN/NOTIFY.

    Each rate runs LATENCY_ROUNDS times, alternating with the baseline, and the percentiles
    are taken over every job of those runs: one run's p99 rests on its fifty slowest jobs,
    which a single stall of this shared 2-core machine decides.
    """
    rounds = 1 if ctx.quick else LATENCY_ROUNDS
    for rate, n, p50_target, p99_target in ((200, 2000, 1.5, 5.0), (1000, 5000, None, 10.0)):
        if ctx.quick:
            n = n // 4
        ours: list[float] = []
        raw: list[float] = []
        achieved: list[float] = []
        claims: list[float] = []
        run_p99: dict[str, list[float]] = {"jqs": [], "raw": []}
        late_wakeups: dict[str, list[float]] = {"jqs": [], "raw": []}
        for _ in range(rounds):
            with _stall_probe(ctx) as late_between:
                run = await _jqs_latency(ctx, rate, n)
                late_wakeups["jqs"] += late_between(*run["window"])  # type: ignore[misc]
            raw_dsn = await ctx.server.fresh()
            with _stall_probe(ctx) as late_between:
                began = time.time()
                raw_run = await raw_queue.latency(raw_dsn, rate, n)
                late_wakeups["raw"] += late_between(began, time.time())
            ours += run["latencies"]  # type: ignore[arg-type]
            raw += raw_run
            achieved.append(float(run["achieved"]))  # type: ignore[arg-type]
            claims.append(float(run["claims_per_job"]))  # type: ignore[arg-type]
            run_p99["jqs"].append(percentile(run["latencies"], 99))  # type: ignore[arg-type]
            run_p99["raw"].append(percentile(raw_run, 99))
        ctx.extra[f"latency_{rate}"] = {
            "jqs": {"latencies": ours, "achieved": min(achieved)},
            "raw": raw,
            "run_p99": run_p99,
            "late_wakeups": late_wakeups,
        }
        for pct, target in ((50, p50_target), (99, p99_target)):
            value, base = percentile(ours, pct), percentile(raw, pct)
            ctx.rows.append(
                Row(
                    f"pickup latency p{pct} at {rate} jobs/s (ms)",
                    value,
                    base,
                    "ms",
                    "raw asyncpg INSERT+NOTIFY, LISTEN+claim",
                    f"<= {target} ms" if target else "",
                    higher_is_better=False,
                    met=None if target is None else value <= target,
                    note=f"{rounds} runs of {n} jobs alternating with the baseline, "
                    f"percentiles over all; achieved {min(achieved):.0f}/s at least; "
                    f"{statistics.mean(claims):.2f} claims per job",
                )
            )


@contextlib.contextmanager
def _stall_probe(ctx: Context) -> Iterator[Callable[[float, float], list[float]]]:
    """Run bench.stalls through the block; yields `late_between(begin, end)`, which stops
    it and returns how late (ms) its late wake-ups between those times were. Only the
    measured window counts: a server's start-up alone wakes it late a few times."""
    out = Path(tempfile.mkstemp(suffix=".txt")[1])
    proc = start([sys.executable, "-m", "bench.stalls", str(out)], {}, ctx.log("stalls"))

    def late_between(begin: float, end: float) -> list[float]:
        proc.stop()
        return stalls.read(out, begin, end)

    try:
        yield late_between
    finally:
        proc.stop()
        out.unlink(missing_ok=True)


async def _jqs_latency(ctx: Context, rate: int, n: int) -> dict[str, object]:
    dsn, port = await ctx.server.fresh(), free_port()
    starts_file = Path(tempfile.mkstemp(suffix=".txt")[1])
    proc = jqs(
        ["serve"],
        {
            "DATABASE_URL": dsn,
            "PORT": str(port),
            "JQS_LOG_LEVEL": "warning",
            "JQS_WORKER_CONCURRENCY": "50",
            "JQS_BENCH_STARTS": str(starts_file),
        },
        ctx.log(f"latency_{rate}"),
    )
    client = Client("127.0.0.1", port, size=32)
    try:
        await wait_http(f"http://127.0.0.1:{port}/health")
        await client.open()
        body = orjson.dumps({"task": "record_start"})
        await open_loop(client, "/jobs", [body] * 50, 100)  # warm-up
        starts_file.write_text("")
        began = time.time()
        answered, achieved, failures = await open_loop(client, "/jobs", [body] * n, rate)
        deadline = time.monotonic() + 30
        while not answered.keys() <= _starts(starts_file).keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        window = (began, time.time())
    finally:
        await client.close()
        proc.stop()
    starts = _starts(starts_file)
    latencies = [(starts[i] - t) * 1000 for i, t in answered.items() if i in starts]
    assert not failures, f"{failures} submissions failed"
    assert len(latencies) == n, f"{len(latencies)} of {n} jobs started"
    claims = await _claims(dsn)
    return {
        "latencies": latencies,
        "achieved": achieved,
        "claims_per_job": claims / (n + 50),
        "window": window,  # when the measured jobs were sent and started (time.time())
    }


async def _claims(dsn: str) -> int:
    """Claim statements run in `dsn` so far: each reads the index of queued jobs once per
    queue (one here). The server's statistics arrive when the backends have exited."""
    await asyncio.sleep(1)
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT coalesce(idx_scan, 0) FROM pg_stat_user_indexes "
                "WHERE indexrelname = 'jobs_runnable_idx'"
            )
        )
    finally:
        await conn.close()


def _starts(path: Path) -> dict[int, float]:
    """{job id: handler start time} from the record_start handler's file."""
    pairs = (line.split() for line in path.read_text().splitlines() if line.strip())
    return {int(job_id): float(at) for job_id, at in pairs}


def _other_drain_args(system: str, jobs: int) -> list[str]:
    # Statistics after the bulk load, as JQS's own drain gets (autovacuum may be late).
    analyze = ["--analyze"] if system == "pgqueuer" else []
    return ["--mode", "drain", "--jobs", str(jobs), *analyze]


async def _other_run(ctx: Context, system: str, name: str, args: list[str]) -> dict[str, object]:
    """One run of bench/others/<system>_bench.py in a fresh database; its JSON result."""
    dsn = await ctx.server.fresh(schema=False)
    out = subprocess.run(
        [_venv(system), str(REPO / "bench" / "others" / f"{system}_bench.py"), "--dsn", dsn, *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    ctx.log(f"{system}_{name}").write_text(out.stderr)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode == 0 and lines:
        return dict(json.loads(lines[-1]))
    return {"error": out.stderr.strip().splitlines()[-1:] or ["failed"]}


async def others(ctx: Context) -> None:
    """6. PgQueuer and Procrastinate, each from PyPI in a virtualenv of its own."""
    for system in ("pgqueuer", "procrastinate"):
        results: dict[str, dict[str, object]] = {}
        drain_jobs = 10_000 if ctx.quick or system == "procrastinate" else 50_000
        # PgQueuer's drains ran in the drain scenario, round by round with JQS's (when it
        # ran). Procrastinate's takes a minute or more: once is enough to place it.
        drains = ctx.extra.get(f"{system}_drains")
        if not isinstance(drains, list):
            rounds = 1 if system == "procrastinate" else DRAIN_ROUNDS
            args = _other_drain_args(system, drain_jobs)
            drains = [await _other_run(ctx, system, f"drain_{i}", args) for i in range(rounds)]
        for rate, n in ((200, 2000), (1000, 5000)):
            args = [
                "--mode",
                "latency",
                "--rate",
                str(rate),
                "--jobs",
                str(n // 4 if ctx.quick else n),
            ]
            results[f"latency_{rate}"] = await _other_run(ctx, system, f"latency_{rate}", args)
        results["drain"] = _median_drain(drains)
        ctx.extra[system] = results


def _median_drain(runs: list[dict[str, object]]) -> dict[str, object]:
    """The run with the median speed, with every run's speed added; a failure wins."""
    failed = [r for r in runs if "error" in r]
    if failed:
        return failed[0]
    ordered = sorted(runs, key=lambda r: float(str(r["jobs_per_s"])))
    return {**ordered[len(ordered) // 2], "runs": [r["jobs_per_s"] for r in runs]}


def _venv(system: str) -> str:
    """The virtualenv for `system`, made and filled from PyPI on first use."""
    root = REPO / ".bench" / "venvs" / system
    python = root / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
        packages = {
            "pgqueuer": ["pgqueuer", "asyncpg", "uvloop"],
            "procrastinate": ["procrastinate", "psycopg[binary,pool]"],
        }[system]
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return str(python)


async def memory(ctx: Context, minutes: float) -> None:
    """Resident memory of `jqs serve` through a steady load (200 jobs/s)."""
    dsn, port = await ctx.server.fresh(), free_port()
    proc = jqs(["serve"], {"DATABASE_URL": dsn, "PORT": str(port)}, ctx.log("memory"))
    samples: list[tuple[float, float]] = []
    client = Client("127.0.0.1", port, size=8)
    try:
        await wait_http(f"http://127.0.0.1:{port}/health")
        await client.open()
        watched = psutil.Process(proc.popen.pid)
        began = time.monotonic()
        body = orjson.dumps({"task": "noop"})
        while (elapsed := time.monotonic() - began) < minutes * 60:
            await open_loop(client, "/jobs", [body] * 1000, 200)  # five seconds of load
            samples.append((elapsed, watched.memory_info().rss / 2**20))
    finally:
        await client.close()
        proc.stop()
    window = max(1, len(samples) // max(1, int(minutes)))  # about one minute of samples
    first = sum(rss for _, rss in samples[:window]) / window
    last = sum(rss for _, rss in samples[-window:]) / window
    ctx.extra["memory"] = {"samples": samples, "first": first, "last": last, "minutes": minutes}
