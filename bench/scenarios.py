"""The benchmark scenarios. Each measures JQS and its baseline in the same run."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
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
    process_cpu,
    start,
    wait_http,
    wrk_post,
)
from bench.http_load import Client, open_loop
from bench.pacing import paced

# Drains are repeated (taking turns with their baselines) and the medians compared: single
# drains of a few seconds vary by a fifth on a 2-core machine.
DRAIN_ROUNDS = 3
SINGLE_ROUNDS = 3
# Single POST with and without an API key: short runs in back-to-back pairs, each side going
# first in turn, and the median of the pairs' ratios. A key costs far less than the machine's
# other work moves a run within seconds; a pair's two runs share that drift, runs minutes
# apart do not. Two processes of the same code under the same load also differ, for their
# whole life, by more than a key costs: each block of pairs has fresh servers.
KEY_BLOCKS = 6
KEY_PAIRS = 3  # in each block
KEY_SECONDS = 3
# Four servers side by side vary more run to run than two: more rounds for their medians.
SERVERS_ROUNDS = 5
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
    # Set when the runs were taken in pairs (JQS and its baseline back to back): the median of
    # the pairs' value / baseline, which is then the row's ratio.
    paired: float | None = None

    @property
    def ratio(self) -> float:
        if self.paired is not None:
            return self.paired
        return self.value / self.baseline if self.baseline else float("nan")


@dataclass
class Context:
    server: Server
    logs: Path
    quick: bool
    rows: list[Row] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)
    # Set when the scenario runs on a server other than the run's main one: it names that
    # server in the rows' titles and the log files.
    tag: str = ""

    def log(self, name: str) -> Path:
        suffix = f"_{self.tag}".replace(":", "_") if self.tag else ""
        return self.logs / f"{name}{suffix}.log"

    def title(self, scenario: str) -> str:
        return f"{scenario} [{self.tag}]" if self.tag else scenario


def _rotated(items: list[str], by: int) -> list[str]:
    """`items` starting at `by`: each takes every place in turn, round by round."""
    by %= len(items)
    return items[by:] + items[:by]


async def _count(dsn: str, where: str = "TRUE") -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM jobs WHERE {where}"))
    finally:
        await conn.close()


BENCH_KEY = "bench-admin-key-0123456789abcdefghijklmnop"


async def single_post(ctx: Context) -> None:
    """1. Single POST /jobs under wrk: JQS vs bare Starlette + asyncpg, one INSERT each; and
    JQS with an API key on every request vs the same JQS without authentication.

    JQS (logging every request), JQS at warning and the baseline stay up, each with a
    database of its own, and take turns for SINGLE_ROUNDS rounds, each going first in turn;
    the medians are compared. One run of each, minutes apart, followed the machine's drift:
    the ratio of the same code ranged from 1.5x to 2.8x between runs of `make bench` on one
    day. Then JQS with and without a key, and with metrics on and off, run in pairs (`_pairs`).
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
            env = {"DATABASE_URL": dsn, "PORT": str(port), "JQS_LOG_LEVEL": level}
            procs.append(jqs(["serve", "--no-worker"], env, ctx.log(f"single_post_{name}")))
            urls[name] = f"http://127.0.0.1:{port}/jobs"
            await wait_http(f"http://127.0.0.1:{port}/health")
        dsn, port = await ctx.server.fresh(schema="raw", keep=dsns), free_port()
        procs.append(start_baseline(dsn, port, ctx.log("single_post_baseline")))
        urls["baseline"] = f"http://127.0.0.1:{port}/jobs"
        await wait_http(urls["baseline"])
        for url in urls.values():
            wrk_post(url, body, seconds=2, connections=connections)
        runs: dict[str, list[float]] = {name: [] for name in urls}
        names = list(urls)
        for r in range(rounds):
            for name in _rotated(names, r):
                rate = await asyncio.to_thread(
                    functools.partial(
                        wrk_post, urls[name], body, seconds=seconds, connections=connections
                    )
                )
                runs[name].append(rate)
    finally:
        for proc in procs:
            proc.stop()
    key_seconds, key_pairs = (2, 2) if ctx.quick else (KEY_SECONDS, KEY_PAIRS)
    blocks = 2 if ctx.quick else KEY_BLOCKS
    paired = functools.partial(
        _pairs,
        ctx,
        body,
        blocks=blocks,
        pairs=key_pairs,
        seconds=key_seconds,
        connections=connections,
    )
    rows = functools.partial(_pair_rows, seconds=key_seconds, per_block=key_pairs)
    auth = {"Authorization": f"Bearer {BENCH_KEY}"}
    keyed = await paired((Variant("open"), Variant("key", {"JQS_ADMIN_KEY": BENCH_KEY}, auth)))
    # Metrics on (the default) against off: what the Prometheus recorder costs a request.
    metered = await paired((Variant("nometrics", {"JQS_METRICS": "false"}), Variant("metrics")))
    ctx.extra["single_runs"] = runs
    ctx.extra["key_pairs"] = [asdict(pair) for pair in keyed]
    ctx.extra["metrics_pairs"] = [asdict(pair) for pair in metered]
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
            "Starlette+asyncpg, 1 INSERT/request into a minimal table",
            ">= 1.5x",
            note=note,
        )
    )
    ctx.rows += rows(
        keyed,
        what="with an API key",
        baseline="the same JQS without authentication",
        change="every request carries Authorization: Bearer",
    )
    ctx.rows += rows(
        metered,
        what="with metrics on",
        baseline="the same JQS with JQS_METRICS=false",
        change="the default JQS_METRICS=true records every request",
    )
    ctx.rows.append(
        Row(
            "single POST /jobs, JQS_LOG_LEVEL=warning (requests/s)",
            statistics.median(runs["jqs_quiet"]),
            baseline,
            "req/s",
            "Starlette+asyncpg, 1 INSERT/request into a minimal table",
            note="same load, no per-request logs",
        )
    )


@dataclass(frozen=True)
class Variant:
    """One side of a paired comparison of single POST: what its server and requests add."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] | None = None
    # bench/served_app.py on this HTTP server instead of `jqs serve`
    served_by: str | None = None


@dataclass
class Pair:
    """Two back-to-back wrk runs, one on each side of a comparison."""

    rate_base: float
    rate_other: float
    cpu_base: float  # server CPU per request (us)
    cpu_other: float


async def _pairs(
    ctx: Context,
    body: str,
    sides: tuple[Variant, Variant],
    *,
    blocks: int,
    pairs: int,
    seconds: int,
    connections: int,
) -> list[Pair]:
    """Single POST on two variants of JQS: `blocks` times, two fresh servers (each with a
    database of its own, each started first in turn) and `pairs` pairs of wrk runs on them,
    each going first in turn. A pair in which either run answered nothing is left out.
    Paired short runs follow the machine's drift, which a median of long runs minutes apart
    does not."""
    found: list[Pair] = []
    by_name = {side.name: side for side in sides}
    order = [side.name for side in sides]
    for block in range(blocks):
        dsns: list[str] = []
        servers: dict[str, tuple[Proc, str]] = {}
        try:
            for name in _rotated(order, block):
                dsn, port = await ctx.server.fresh(keep=dsns), free_port()
                dsns.append(dsn)
                env = {"DATABASE_URL": dsn, "PORT": str(port), "JQS_LOG_LEVEL": "info"}
                env |= by_name[name].env
                log = ctx.log(f"single_post_{name}_{block}")
                served_by = by_name[name].served_by
                proc = (
                    jqs(["serve", "--no-worker"], env, log)
                    if served_by is None
                    else start(_served_argv(served_by, port), env, log)
                )
                servers[name] = (proc, f"http://127.0.0.1:{port}/jobs")
                await wait_http(f"http://127.0.0.1:{port}/health")
            for name, (_, url) in servers.items():
                headers = by_name[name].headers
                wrk_post(url, body, seconds=2, connections=connections, headers=headers)
            for p in range(pairs):
                rate: dict[str, float] = {}
                cpu: dict[str, float] = {}
                for name in _rotated(order, block + p):
                    proc, url = servers[name]
                    before = process_cpu(proc.popen.pid)
                    rate[name] = await asyncio.to_thread(
                        functools.partial(
                            wrk_post,
                            url,
                            body,
                            seconds=seconds,
                            connections=connections,
                            headers=by_name[name].headers,
                        )
                    )
                    used = process_cpu(proc.popen.pid) - before
                    cpu[name] = used / (rate[name] * seconds) * 1e6 if rate[name] else math.nan
                base, other = order
                if rate[base] > 0 and rate[other] > 0:
                    found.append(Pair(rate[base], rate[other], cpu[base], cpu[other]))
        finally:
            for proc, _ in servers.values():
                proc.stop()
    return found


def _served_argv(server: str, port: int) -> list[str]:
    return [sys.executable, "-m", "bench.served_app", "--server", server, "--port", str(port)]


def _pair_rows(
    pairs: list[Pair], *, what: str, baseline: str, change: str, seconds: int, per_block: int
) -> list[Row]:
    """The rows of single POST with `what` against the same JQS without (`baseline`)."""
    if not pairs:
        return []
    how = (
        f"{len(pairs)} pairs of {seconds}s wrk runs back to back, each side going first in "
        f"turn, on fresh servers every {per_block} pairs; ratio: the median of the pairs' ratios"
    )
    cpu_ratio = statistics.median(pair.cpu_other / pair.cpu_base for pair in pairs)
    return [
        Row(
            f"single POST /jobs {what} (requests/s)",
            statistics.median(pair.rate_other for pair in pairs),
            statistics.median(pair.rate_base for pair in pairs),
            "req/s",
            baseline,
            ">= 0.95x",
            paired=statistics.median(pair.rate_other / pair.rate_base for pair in pairs),
            note=f"same load; {change}; {how}",
        ),
        Row(
            f"single POST /jobs {what}: server CPU per request (us)",
            statistics.median(pair.cpu_other for pair in pairs),
            statistics.median(pair.cpu_base for pair in pairs),
            "us",
            baseline,
            ">= 0.95x",
            higher_is_better=False,
            # The table shows without / with for a row where lower is better.
            met=1 / cpu_ratio >= 0.95,
            paired=cpu_ratio,
            note=f"CPU time of the server process over each run / requests answered; {how}",
        ),
    ]


SERVED_BY = {
    "uvicorn-guarded": "uvicorn with JQS's connection limits (as `jqs serve`)",
    "granian": "granian",
    "hypercorn": "hypercorn",
}


async def servers(ctx: Context) -> None:
    """Single POST /jobs with JQS's app on each candidate HTTP server, against plain uvicorn.

    The same app (bench/served_app.py) on every server, each with a database of its own;
    they stay up and take turns for SERVERS_ROUNDS rounds like single_post, and the medians
    are compared with plain uvicorn (httptools), the server JQS used before its connection
    limits. The guarded row is what `jqs serve` runs; the others are the alternatives.
    """
    seconds, connections = (5, 64) if ctx.quick else (10, 64)
    rounds = 1 if ctx.quick else SERVERS_ROUNDS
    body = json.dumps(PAYLOAD)
    urls: dict[str, str] = {}
    dsns: list[str] = []
    procs: list[Proc] = []
    try:
        for name in ("uvicorn", *SERVED_BY):
            dsn, port = await ctx.server.fresh(keep=dsns), free_port()
            dsns.append(dsn)
            argv = ["--server", name, "--port", str(port)]
            procs.append(
                start(
                    [sys.executable, "-m", "bench.served_app", *argv],
                    {"DATABASE_URL": dsn, "JQS_LOG_LEVEL": "info"},
                    ctx.log(f"servers_{name}"),
                )
            )
            urls[name] = f"http://127.0.0.1:{port}/jobs"
            await wait_http(f"http://127.0.0.1:{port}/health")
        for url in urls.values():
            wrk_post(url, body, seconds=2, connections=connections)  # warm-up
        runs: dict[str, list[float]] = {name: [] for name in urls}
        names = list(urls)
        for r in range(rounds):
            for name in _rotated(names, r):
                runs[name].append(
                    await asyncio.to_thread(
                        wrk_post, urls[name], body, seconds=seconds, connections=connections
                    )
                )
    finally:
        for proc in procs:
            proc.stop()
    ctx.extra["servers_runs"] = runs
    baseline = statistics.median(runs["uvicorn"])
    note = (
        f"wrk, {connections} connections, {seconds}s a run; median of {rounds} runs each, "
        "taking turns; the same app and settings on every server, one process each"
    )
    for name, label in SERVED_BY.items():
        if name == "uvicorn-guarded":
            continue  # in pairs below
        ctx.rows.append(
            Row(
                f"single POST /jobs on {label} (requests/s)",
                statistics.median(runs[name]),
                baseline,
                "req/s",
                "the same app on plain uvicorn (httptools)",
                note=note,
            )
        )
    # What `jqs serve` runs, against plain uvicorn: back-to-back pairs follow the drift.
    key_seconds, per_block = (2, 2) if ctx.quick else (KEY_SECONDS, KEY_PAIRS)
    pairs = await _pairs(
        ctx,
        body,
        (Variant("uvicorn", served_by="uvicorn"), Variant("guarded", served_by="uvicorn-guarded")),
        blocks=2 if ctx.quick else KEY_BLOCKS,
        pairs=per_block,
        seconds=key_seconds,
        connections=connections,
    )
    ctx.extra["servers_pairs"] = [asdict(pair) for pair in pairs]
    ctx.rows += _pair_rows(
        pairs,
        what=f"on {SERVED_BY['uvicorn-guarded']}",
        baseline="the same app on plain uvicorn (httptools)",
        change="the same app and settings on both",
        seconds=key_seconds,
        per_block=per_block,
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
    raw_dsn = await ctx.server.fresh(schema="raw", keep=[dsn])
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
            "raw asyncpg unnest INSERT into a minimal table",
            ">= 0.6x",
            note=f"{batches} requests, {concurrency} keep-alive connections "
            f"(bench/http_load.py); median of {rounds} alternating runs each",
        )
    )


async def _fill(dsn: str, n: int, task: str = "noop") -> int:
    """Queue n jobs of `task` in JQS's `jobs` table; returns the highest id before them."""
    conn = await asyncpg.connect(dsn)
    try:
        before = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM jobs"))
        await conn.execute(
            "INSERT INTO jobs (payload) SELECT $1::jsonb FROM generate_series(1, $2)",
            orjson.dumps({"task": task}).decode(),
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


@dataclass(frozen=True)
class DrainTimes:
    """One drain, timed by the database's clock from two starting points."""

    jobs: int
    from_first_claim: float  # seconds: first claim to last completion
    from_first_outcome: float  # seconds: first attempt written (done or failed) to the last

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.from_first_claim

    @property
    def jobs_per_s_from_first_outcome(self) -> float:
        return self.jobs / self.from_first_outcome


async def _drain_times(dsn: str, after: int = 0) -> DrainTimes:
    """How long the jobs after id `after` took, by the database's clock.

    A claim sets `started_at`, a completion `finished_at`, and a failed attempt that will be
    retried sets `run_at` to when it may run again: now, for RetryLater(0). A retried job's
    `started_at` is its last claim's, so a drain with retries is timed from the first
    attempt's outcome instead (the earliest `finished_at`, or `run_at` of a retried job);
    drains compared with it are timed the same way.
    """
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, "
            "extract(epoch FROM max(finished_at) - min(started_at)) AS from_claim, "
            "extract(epoch FROM max(finished_at) - least(min(finished_at), "
            "  min(run_at) FILTER (WHERE attempts > 1))) AS from_outcome "
            "FROM jobs WHERE id > $1",
            after,
        )
        assert row is not None
        return DrainTimes(int(row["n"]), float(row["from_claim"]), float(row["from_outcome"]))
    finally:
        await conn.close()


async def _span(dsn: str, after: int = 0) -> float:
    """Seconds from the first claim to the last completion of the jobs after id `after`,
    by the database's clock."""
    return (await _drain_times(dsn, after)).from_first_claim


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


async def jqs_drain_times(
    ctx: Context,
    dsn: str,
    n: int,
    name: str,
    *,
    log_level: str = "warning",
    task: str = "noop",
    metrics: bool = True,
    env: dict[str, str] | None = None,
) -> DrainTimes:
    """Queue n jobs of `task` in `dsn`; one `jqs worker` (concurrency 100) drains them.
    `env` adds to the worker's environment (its DATABASE_URL may lead elsewhere)."""
    after = await _fill(dsn, n, task)
    env = {
        "DATABASE_URL": dsn,
        "JQS_WORKER_CONCURRENCY": "100",
        "JQS_LOG_LEVEL": log_level,
        **(env or {}),
    }
    if not metrics:
        env["JQS_METRICS"] = "false"
    proc = jqs(["worker"], env, ctx.log(name))
    try:
        await _wait_done(dsn, n, 600, proc, after=after)
    finally:
        proc.stop()
    return await _drain_times(dsn, after)


async def jqs_drain(
    ctx: Context, dsn: str, n: int, name: str, *, log_level: str = "warning"
) -> float:
    """Jobs/s of one `jqs worker` (concurrency 100) draining n no-op jobs queued in `dsn`."""
    return (await jqs_drain_times(ctx, dsn, n, name, log_level=log_level)).jobs_per_s


async def raw_drain(ctx: Context, n: int) -> float:
    """Jobs/s of the raw loop draining n jobs from the minimal table, in a fresh database."""
    dsn = await ctx.server.fresh(schema="raw")
    await raw_queue.fill(dsn, n, orjson.dumps({"task": "noop"}))
    return await raw_queue.drain(dsn, 100)


DRAIN_KINDS = {
    "jqs": "JQS, JQS_LOG_LEVEL=warning",
    "jqs_info": "JQS, JQS_LOG_LEVEL=info",
    "jqs_retry": "JQS, every job failing once (timed from the first attempt's outcome)",
    "raw": "raw asyncpg loop, minimal table",
    "pgqueuer": "PgQueuer",
}


async def drain(ctx: Context) -> None:
    """3. N queued jobs drained by one `jqs worker`, against a raw claim/complete loop on a
    minimal table and against PgQueuer; and JQS at the default log level, and with every
    job failing once, against JQS's own drain.

    Every round runs each kind once, each kind starting the round in turn, so drift in the
    machine falls on all of them; the medians of DRAIN_ROUNDS rounds are compared.
    """
    n = 10_000 if ctx.quick else 50_000
    rounds = 1 if ctx.quick else DRAIN_ROUNDS
    kinds = list(DRAIN_KINDS)
    runs: dict[str, list[float]] = {kind: [] for kind in kinds}
    # JQS's all-succeed drain timed like the drain with retries (from the first outcome).
    from_outcome: dict[str, list[float]] = {"jqs": [], "jqs_retry": []}
    pgqueuer: list[dict[str, object]] = []
    for round_no in range(rounds):
        for kind in _rotated(kinds, round_no):
            name = f"drain_{kind}_{round_no}"
            if kind == "raw":
                runs[kind].append(await raw_drain(ctx, n))
            elif kind == "pgqueuer":
                result = await _other_run(ctx, "pgqueuer", name, _other_drain_args("pgqueuer", n))
                pgqueuer.append(result)  # a failure is reported; JQS's numbers still count
                if "error" not in result:
                    runs[kind].append(float(str(result["jobs_per_s"])))
            else:
                times = await jqs_drain_times(
                    ctx,
                    await ctx.server.fresh(),
                    n,
                    name,
                    log_level="info" if kind == "jqs_info" else "warning",
                    task="fail_once" if kind == "jqs_retry" else "noop",
                )
                # A retried job's started_at is its last claim's: that drain can only be
                # timed from its first outcome.
                runs[kind].append(
                    times.jobs_per_s_from_first_outcome if kind == "jqs_retry" else times.jobs_per_s
                )
                if kind in from_outcome:
                    from_outcome[kind].append(times.jobs_per_s_from_first_outcome)
    median = {
        kind: statistics.median(values) if values else float("nan") for kind, values in runs.items()
    }
    ctx.extra["drain_runs"] = runs
    ctx.extra["drain_runs_from_outcome"] = from_outcome
    ctx.extra["pgqueuer_drains"] = pgqueuer
    each = f"median of {rounds} runs each, taking turns"
    title = f"drain {n:,} no-op jobs, one worker (jobs/s)"
    ctx.rows += [
        Row(
            ctx.title(title),
            median["jqs"],
            median["raw"],
            "jobs/s",
            "raw asyncpg claim/complete, batches of 100, minimal table; each payload "
            "decoded for a no-op handler, each result written",
            ">= 0.5x",
            note=f"worker concurrency 100, JQS_LOG_LEVEL=warning; {each}",
        ),
        Row(
            ctx.title(f"{title}, against PgQueuer"),
            median["jqs"],
            median["pgqueuer"],
            "jobs/s",
            f"PgQueuer {_version_of(pgqueuer)}, one QueueManager, batch_size 100",
            ">= 2x",
            note=f"both timed first dequeue to last completion by the database's clock; {each}"
            + "".join(f"; a run failed: {r['error']}" for r in pgqueuer if "error" in r),
        ),
        Row(
            ctx.title(f"{title}, JQS_LOG_LEVEL=info (the default)"),
            median["jqs_info"],
            median["jqs"],
            "jobs/s",
            "the same drain at JQS_LOG_LEVEL=warning",
            ">= 0.85x",
            note=f"two JSON log lines per job, to a file; {each}",
        ),
        Row(
            ctx.title(f"drain {n:,} jobs that each fail once, then succeed (jobs/s)"),
            statistics.median(from_outcome["jqs_retry"]),
            statistics.median(from_outcome["jqs"]),
            "jobs/s",
            "the same drain with every job succeeding at once",
            ">= 0.5x",
            note="RetryLater(0) on attempt 1 (bench/tasks.py), JQS_LOG_LEVEL=warning (a "
            "RetryLater is logged at info: no line); both timed from the first attempt's "
            f"outcome to the last completion; {each}",
        ),
    ]


def _version_of(results: list[dict[str, object]]) -> str:
    return next((str(r["version"]) for r in results if "version" in r), "")


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
    dsn, port = await ctx.server.fresh(schema="raw"), free_port()
    api = start_baseline(dsn, port, ctx.log("end_to_end_baseline"))
    stop = asyncio.Event()
    consumer = asyncio.create_task(raw_queue.consume_until(dsn, stop))
    try:
        await wait_http(f"http://127.0.0.1:{port}/jobs")
        baseline = await _completed_during(
            dsn, f"http://127.0.0.1:{port}/jobs", body, seconds, table="raw_jobs"
        )
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
            "Starlette+asyncpg endpoint + raw claim/complete loop, minimal table",
            note=f"wrk 64 connections for {seconds}s; one process each side",
        )
    )


async def _completed_during(
    dsn: str, url: str, body: str, seconds: int, table: str = "jobs"
) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        began = await conn.fetchval("SELECT clock_timestamp()")
        await asyncio.to_thread(wrk_post, url, body, seconds=seconds, connections=64)
        ended = await conn.fetchval("SELECT clock_timestamp()")
        done = await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE finished_at BETWEEN $1 AND $2", began, ended
        )
        took: float = (ended - began).total_seconds()
        return float(done) / took
    finally:
        await conn.close()


LATENCY_SYSTEMS = ["jqs", "raw", "pgqueuer"]


@dataclass
class LatencyRun:
    """One latency run of one system: every job's latencies in ms."""

    latencies: list[float]  # its enqueue call returned (committed) -> its handler started
    send_to_start: list[float]  # its enqueue call was made -> its handler started
    achieved: float  # jobs sent per second
    window: tuple[float, float]  # first send to last start, time.time()
    claims_per_job: float | None = None


async def pickup_latency(ctx: Context) -> None:
    """5. Commit-to-handler-start latency at 200 and 1,000 jobs/s: JQS, the raw LISTEN/NOTIFY
    baseline and PgQueuer, taking turns.

    Every system is stamped the same way: a producer in a process of its own sends job i at
    t0 + i/rate (bench/pacing.py) through the system's own enqueue call and stamps
    time.time() when the call returns (the job is committed); the handler stamps time.time()
    first thing. For JQS the call is POST /jobs (its 201 comes after the commit); for the raw
    baseline an INSERT + NOTIFY transaction; for PgQueuer `Queries.enqueue`. Each rate runs
    LATENCY_ROUNDS times per system, each system starting a round in turn, and percentiles
    are taken over every job of those runs: one run's p99 rests on its slowest few jobs,
    which a single stall of this shared 2-core machine decides.
    """
    rounds = 1 if ctx.quick else LATENCY_ROUNDS
    for rate, n, p50_target, p99_target in ((200, 2000, 1.5, 5.0), (1000, 5000, None, 10.0)):
        if ctx.quick:
            n = n // 4
        latencies: dict[str, list[float]] = {system: [] for system in LATENCY_SYSTEMS}
        send_to_start: dict[str, list[float]] = {system: [] for system in LATENCY_SYSTEMS}
        achieved: dict[str, list[float]] = {system: [] for system in LATENCY_SYSTEMS}
        run_p99: dict[str, list[float]] = {system: [] for system in LATENCY_SYSTEMS}
        late_wakeups: dict[str, list[float]] = {system: [] for system in LATENCY_SYSTEMS}
        failed: dict[str, str] = {}
        claims: list[float] = []
        for round_no in range(rounds):
            for system in _rotated(LATENCY_SYSTEMS, round_no):
                if system in failed:
                    continue
                with _stall_probe(ctx) as late_between:
                    try:
                        run = await _latency_run(ctx, system, rate, n, round_no)
                    except Exception as exc:  # a peer failing must not lose JQS's numbers
                        if system == "jqs":
                            raise
                        failed[system] = repr(exc)
                        continue
                    late_wakeups[system] += late_between(*run.window)
                latencies[system] += run.latencies
                send_to_start[system] += run.send_to_start
                achieved[system].append(run.achieved)
                run_p99[system].append(percentile(run.latencies, 99))
                if run.claims_per_job is not None:
                    claims.append(run.claims_per_job)
        ctx.extra[f"latency_{rate}"] = {
            "latencies": latencies,
            "send_to_start": send_to_start,
            "achieved": {k: min(v) for k, v in achieved.items() if v},
            "run_p99": run_p99,
            "late_wakeups": late_wakeups,
            "failed": failed,
        }
        ours, raw = latencies["jqs"], latencies["raw"]
        for pct, target in ((50, p50_target), (99, p99_target)):
            value, base = percentile(ours, pct), percentile(raw, pct)
            ctx.rows.append(
                Row(
                    ctx.title(f"pickup latency p{pct} at {rate} jobs/s (ms)"),
                    value,
                    base,
                    "ms",
                    "raw asyncpg INSERT+NOTIFY, LISTEN+claim, minimal table",
                    f"<= {target} ms" if target else "",
                    higher_is_better=False,
                    met=None if target is None else value <= target,
                    note=f"{rounds} runs of {n} jobs taking turns with the baseline and "
                    f"PgQueuer, percentiles over all; achieved {min(achieved['jqs']):.0f}/s "
                    f"at least; {statistics.mean(claims):.2f} claims per job",
                )
            )


async def _latency_run(ctx: Context, system: str, rate: int, n: int, round_no: int) -> LatencyRun:
    if system == "jqs":
        return await _jqs_latency(ctx, rate, n)
    if system == "raw":
        dsn = await ctx.server.fresh(schema="raw")
        stamps = await raw_queue.latency(dsn, rate, n, ctx.log(f"raw_latency_{rate}"))
        return _latency_from_stamps(stamps["sent"], stamps["committed"], stamps["started"], rate)
    result = await _other_run(
        ctx,
        system,
        f"latency_{rate}_{round_no}",
        ["--mode", "latency", "--rate", str(rate), "--jobs", str(n)],
    )
    if "error" in result:
        raise RuntimeError(f"{system}: {result['error']}")
    return _latency_from_result(result)


def _latency_from_result(result: dict[str, object]) -> LatencyRun:
    """A LatencyRun from the JSON line of a bench/others script."""
    window, latencies, send_to_start = (
        result["window"],
        result["latencies_ms"],
        result["send_to_start_ms"],
    )
    assert isinstance(window, list)
    assert isinstance(latencies, list)
    assert isinstance(send_to_start, list)
    return LatencyRun(
        latencies=[float(v) for v in latencies],
        send_to_start=[float(v) for v in send_to_start],
        achieved=float(str(result["achieved_rate"])),
        window=(float(window[0]), float(window[1])),
    )


def _latency_from_stamps(
    sent: dict[int, float], committed: dict[int, float], started: dict[int, float], rate: float
) -> LatencyRun:
    missing = committed.keys() - started.keys()
    if missing:
        raise RuntimeError(f"{len(missing)} of {len(committed)} jobs never started")
    first, last = min(sent.values()), max(committed.values())
    return LatencyRun(
        latencies=[(started[i] - at) * 1000 for i, at in committed.items()],
        send_to_start=[(started[i] - sent[i]) * 1000 for i in committed],
        achieved=len(committed) / (last - first) if last > first else rate,
        window=(first, max(started.values())),
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


async def _jqs_latency(ctx: Context, rate: int, n: int) -> LatencyRun:
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
        answered, achieved, failures = await open_loop(client, "/jobs", [body] * n, rate)
        deadline = time.monotonic() + 30
        while not answered.keys() <= _starts(starts_file).keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        await client.close()
        proc.stop()
    starts = _starts(starts_file)
    starts_file.unlink()
    assert not failures, f"{failures} submissions failed"
    run = _latency_from_stamps(
        {i: sent for i, (sent, _) in answered.items()},
        {i: ack for i, (_, ack) in answered.items()},
        starts,
        rate,
    )
    run.achieved = achieved
    assert len(run.latencies) == n, f"{len(run.latencies)} of {n} jobs started"
    run.claims_per_job = await _claims(dsn) / (n + 50)
    return run


async def wait_latency(ctx: Context) -> None:
    """6. Completion -> `POST /jobs?wait` answer at 200 and 1,000 jobs/s.

    A producer sends job i at t0 + i/rate (bench/pacing.py) as `POST /jobs?wait=30` and
    stamps time.time() when the answer arrives; the handler returns time.time() as its
    result, the moment it ends. The difference is what `?wait` adds to a job: writing its
    end, the process's event feed reading it, and the answer. API and workers share one
    `jqs serve`, as a single process runs them.
    """
    for rate, n, p99_target in ((200, 2000, 10.0), (1000, 5000, None)):
        if ctx.quick:
            n = n // 4
        lags, achieved = await _wait_run(ctx, rate, n)
        for pct, target in ((50, None), (99, p99_target)):
            value = percentile(lags, pct)
            ctx.rows.append(
                Row(
                    ctx.title(f"completion -> ?wait answer p{pct} at {rate} jobs/s (ms)"),
                    value,
                    float("nan"),
                    "ms",
                    "none",
                    f"<= {target} ms" if target else "",
                    higher_is_better=False,
                    met=None if target is None else value <= target,
                    note=f"{n} jobs as POST /jobs?wait=30, paced; handler end (its result) "
                    f"to answer; achieved {achieved:.0f} jobs/s",
                )
            )


async def _wait_run(ctx: Context, rate: int, n: int) -> tuple[list[float], float]:
    """Handler end -> answer of n paced `POST /jobs?wait` (ms), and the rate achieved."""
    dsn, port = await ctx.server.fresh(), free_port()
    proc = jqs(
        ["serve"],
        {
            "DATABASE_URL": dsn,
            "PORT": str(port),
            "JQS_LOG_LEVEL": "warning",
            "JQS_WORKER_CONCURRENCY": "50",
        },
        ctx.log(f"wait_{rate}"),
    )
    client = Client("127.0.0.1", port, size=128)
    lags: list[float] = []
    failures = 0
    body = orjson.dumps({"task": "stamp_end"})

    async def one(_: int) -> None:
        nonlocal failures
        status, payload = await client.post("/jobs?wait=30", body)
        answered = time.time()
        job = orjson.loads(payload) if status == 201 else {}
        if job.get("status") != "completed":
            failures += 1
            return
        lags.append((answered - job["result"]["at"]) * 1000)

    try:
        await wait_http(f"http://127.0.0.1:{port}/health")
        await client.open()
        await paced(100, 100, one)  # warm-up
        lags.clear()
        began = time.perf_counter()
        await paced(n, rate, one)
        achieved = n / (time.perf_counter() - began)
    finally:
        await client.close()
        proc.stop()
    assert not failures, f"{failures} waits did not end with the job completed"
    return lags, achieved


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
    # Statistics and a checkpoint after the bulk load, as JQS's own drains get.
    analyze = ["--analyze"] if system == "pgqueuer" else []
    return ["--mode", "drain", "--jobs", str(jobs), *analyze]


async def _other_run(ctx: Context, system: str, name: str, args: list[str]) -> dict[str, object]:
    """One run of bench/others/<system>_bench.py in a fresh database; its JSON result."""
    dsn = await ctx.server.fresh(schema="none")
    out = await asyncio.to_thread(
        subprocess.run,
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
    return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}


async def others(ctx: Context) -> None:
    """6. Procrastinate, from PyPI in a virtualenv of its own. (PgQueuer is measured beside
    JQS in the drain and latency scenarios.) Its drain takes a minute or more: once is
    enough to place it."""
    system = "procrastinate"
    results: dict[str, object] = {}
    results["drain"] = await _other_run(
        ctx, system, "drain", _other_drain_args(system, 2_000 if ctx.quick else 10_000)
    )
    for rate, n in ((200, 2000), (1000, 5000)):
        args = ["--mode", "latency", "--rate", str(rate), "--jobs", str(n // 4 if ctx.quick else n)]
        result = await _other_run(ctx, system, f"latency_{rate}", args)
        if "error" in result:
            results[f"latency_{rate}"] = result
        else:
            run = _latency_from_result(result)
            results[f"latency_{rate}"] = {
                "latencies": run.latencies,
                "send_to_start": run.send_to_start,
                "settings": result.get("settings", ""),
            }
    ctx.extra[system] = results


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


WEBHOOK_SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


async def _subscribe(dsn: str, url: str, events: list[str]) -> None:
    """A subscription written straight into the database, before JQS starts."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO webhooks (id, url, events, secret) VALUES ('wh_bench0000001', $1, $2, $3)",
            url,
            events,
            WEBHOOK_SECRET,
        )
    finally:
        await conn.close()


def _receiver(port: int, count: int, out: Path, log: Path) -> Proc:
    return start(
        [sys.executable, "-m", "bench.webhook_receiver", str(port), str(count), str(out)],
        {},
        log,
    )


def _received(out: Path) -> list[tuple[float, float, str]]:
    rows = []
    for line in out.read_text().splitlines():
        received, at, message_id = line.split()
        rows.append((float(received), float(at), message_id))
    return rows


async def _wait_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def webhooks(ctx: Context) -> None:
    """Completion -> webhook received at 200 jobs/s, and deliveries per second.

    Latency: jobs are submitted open-loop at 200/s to `jqs serve` (API and workers) with a
    subscription to job.completed; a receiver in a process of its own stamps time.time()
    on each delivery, against the event's own time in its body (the database's now() in the
    transaction that completed the job: the same clock, on this machine). Throughput: a
    finished job's event is written for each of N jobs while no JQS runs (the trigger makes
    N deliveries), then one `jqs worker` sends them; timed at the receiver, first to last.
    """
    rate, n = 200, (400 if ctx.quick else 4000)
    dsn, port, hook_port = await ctx.server.fresh(), free_port(), free_port()
    out = Path(tempfile.mkstemp(suffix=".txt")[1])
    await _subscribe(dsn, f"http://127.0.0.1:{hook_port}/", ["job.completed"])
    receiver = _receiver(hook_port, n + 50, out, ctx.log("webhook_receiver"))
    proc = jqs(
        ["serve"],
        {
            "DATABASE_URL": dsn,
            "PORT": str(port),
            "JQS_LOG_LEVEL": "warning",
            "JQS_WORKER_CONCURRENCY": "50",
            "JQS_HTTP_ALLOW": "127.0.0.1",
        },
        ctx.log("webhook_latency"),
    )
    client = Client("127.0.0.1", port, size=32)
    try:
        await wait_http(f"http://127.0.0.1:{port}/health")
        await client.open()
        body = orjson.dumps({"task": "noop"})
        await open_loop(client, "/jobs", [body] * 50, 100)  # warm-up
        _, achieved, failures = await open_loop(client, "/jobs", [body] * n, rate)
        await asyncio.to_thread(receiver.popen.wait, 60)
    finally:
        await client.close()
        proc.stop()
        receiver.stop()
    got = _received(out)[50:]  # after the warm-up's
    assert not failures, f"{failures} submissions failed"
    assert len(got) == n, f"{len(got)} of {n} webhooks received"
    latencies = [(received - at) * 1000 for received, at, _ in got]
    for pct, target in ((50, None), (99, 50.0)):
        value = percentile(latencies, pct)
        ctx.rows.append(
            Row(
                ctx.title(f"completion -> webhook received p{pct} at {rate} jobs/s (ms)"),
                value,
                target or value,
                "ms",
                "the target" if target else "itself",
                f"<= {target:g} ms" if target else "",
                higher_is_better=False,
                met=None if target is None else value <= target,
                note=f"{n} jobs submitted open-loop (achieved {achieved:.0f}/s), one `jqs "
                "serve`, a subscription to job.completed, a receiver answering 204 in a "
                "process of its own; from the event's time (the completing transaction's) "
                "to receipt",
            )
        )

    count = 2000 if ctx.quick else 20_000
    dsn, hook_port = await ctx.server.fresh(), free_port()
    await _subscribe(dsn, f"http://127.0.0.1:{hook_port}/", ["job.completed"])
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            WITH done AS (
                INSERT INTO jobs (payload, status, finished_at, result)
                SELECT '{"task": "noop"}', 'completed', now(), '{"ok": true}'
                FROM generate_series(1, $1)
                RETURNING id
            )
            INSERT INTO job_events (job_id, type, data)
            SELECT id, 'job.completed', '{"attempt": 1}' FROM done
            """,
            count,
        )
    finally:
        await conn.close()
    out.write_text("")
    receiver = _receiver(hook_port, count, out, ctx.log("webhook_receiver_throughput"))
    proc = jqs(
        ["worker"],
        {"DATABASE_URL": dsn, "JQS_LOG_LEVEL": "warning", "JQS_HTTP_ALLOW": "127.0.0.1"},
        ctx.log("webhook_throughput"),
    )
    try:
        await asyncio.to_thread(receiver.popen.wait, 300)
    finally:
        proc.stop()
        receiver.stop()
    got = _received(out)
    out.unlink()
    assert len(got) == count, f"{len(got)} of {count} webhooks received"
    assert len({message_id for _, _, message_id in got}) == count, "a delivery came twice"
    times = sorted(received for received, _, _ in got)
    per_second = (count - 1) / (times[-1] - times[0])
    ctx.rows.append(
        Row(
            ctx.title("webhook deliveries per second to a fast receiver"),
            per_second,
            2000.0,
            "deliveries/s",
            "the target",
            ">= 2,000/s",
            met=per_second >= 2000,
            note=f"{count} deliveries of job.completed waiting in the outbox, sent by one "
            "`jqs worker` (JQS_WEBHOOK_CONCURRENCY 100); timed at the receiver from the "
            "first to the last",
        )
    )


async def _http_drain_times(ctx: Context, n: int, name: str) -> DrainTimes:
    """Queue n no-op jobs; one HTTP worker process (bench/http_worker.py: claims of 100,
    outcomes batched) drains them through `jqs serve --no-worker`."""
    dsn, port = await ctx.server.fresh(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": dsn, "PORT": str(port), "JQS_LOG_LEVEL": "warning"}
    server = jqs(["serve", "--no-worker"], {**env, "JQS_ADMIN_KEY": BENCH_KEY}, ctx.log(name))
    try:
        await wait_http(f"{url}/health")
        after = await _fill(dsn, n)
        worker = start(
            [sys.executable, "-m", "bench.http_worker", url, BENCH_KEY],
            {},
            ctx.log(f"{name}_worker"),
        )
        try:
            await _wait_done(dsn, n, 600, worker, after=after)
        finally:
            worker.stop()
    finally:
        server.stop()
    return await _drain_times(dsn, after)


async def _http_latency(ctx: Context, rate: int, n: int, *, sdk: bool = False) -> LatencyRun:
    """Jobs sent to POST /jobs at `rate`; one HTTP worker takes them through waiting
    claims and stamps when each arrived. It keeps two claims open, as docs/workers.md
    advises for the lowest pickup latency: one waits while the other's jobs are handled.
    `sdk`: the worker is `jqs worker --url` (httpx) and stamps as its handler starts;
    otherwise bench/http_worker.py, a lean client, stamps as a claim's answer arrives."""
    dsn, port = await ctx.server.fresh(), free_port()
    url = f"http://127.0.0.1:{port}"
    starts_file = Path(tempfile.mkstemp(suffix=".txt")[1])
    env = {"DATABASE_URL": dsn, "PORT": str(port), "JQS_LOG_LEVEL": "warning"}
    # No key exists: a loopback server then answers without one (POST /jobs as elsewhere).
    server = jqs(["serve", "--no-worker"], env, ctx.log(f"http_latency_{rate}"))
    client = Client("127.0.0.1", port, size=32)
    worker: Proc | None = None
    try:
        await wait_http(f"{url}/health")
        if sdk:
            worker = jqs(
                ["worker", "--url", url, "--key", BENCH_KEY],
                {"JQS_BENCH_STARTS": str(starts_file), "JQS_LOG_LEVEL": "warning"},
                ctx.log(f"http_latency_{rate}_sdk_worker"),
            )
        else:
            worker = start(
                [
                    sys.executable,
                    "-m",
                    "bench.http_worker",
                    url,
                    BENCH_KEY,
                    "--loops",
                    "2",
                    "--starts",
                    str(starts_file),
                ],
                {},
                ctx.log(f"http_latency_{rate}_worker"),
            )
        await client.open()
        body = orjson.dumps({"task": "record_start" if sdk else "noop"})
        await open_loop(client, "/jobs", [body] * 50, 100)  # warm-up
        await asyncio.sleep(1)
        starts_file.write_text("")
        answered, achieved, failures = await open_loop(client, "/jobs", [body] * n, rate)
        deadline = time.monotonic() + 30
        while not answered.keys() <= _starts(starts_file).keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        await client.close()
        if worker is not None:
            worker.stop()
        server.stop()
    starts = _starts(starts_file)
    starts_file.unlink()
    assert not failures, f"{failures} submissions failed"
    run = _latency_from_stamps(
        {i: sent for i, (sent, _) in answered.items()},
        {i: ack for i, (_, ack) in answered.items()},
        starts,
        rate,
    )
    run.achieved = achieved
    return run


async def http_worker(ctx: Context) -> None:
    """The HTTP worker protocol: a drain by one HTTP worker process against one `jqs worker`
    (taking turns, medians of DRAIN_ROUNDS), and the pickup latency of a waiting claim at
    200 jobs/s."""
    n = 10_000 if ctx.quick else 50_000
    rounds = 1 if ctx.quick else DRAIN_ROUNDS
    runs: dict[str, list[float]] = {"http": [], "jqs": []}
    for round_no in range(rounds):
        for kind in _rotated(list(runs), round_no):
            name = f"http_drain_{kind}_{round_no}"
            if kind == "http":
                times = await _http_drain_times(ctx, n, name)
            else:
                times = await jqs_drain_times(ctx, await ctx.server.fresh(), n, name)
            runs[kind].append(times.jobs_per_s)
    ctx.extra["http_drain_runs"] = runs
    http, local = statistics.median(runs["http"]), statistics.median(runs["jqs"])
    each = f"median of {rounds} runs each, taking turns"
    ctx.rows.append(
        Row(
            ctx.title(f"drain {n:,} no-op jobs, one HTTP worker process (jobs/s)"),
            http,
            local,
            "jobs/s",
            "one `jqs worker` (concurrency 100) draining the same jobs",
            ">= 0.5x",
            note="bench/http_worker.py (a lean HTTP/1.1 client on uvloop): claims of 100 and "
            "POST /v1/workers/outcomes of 100, two claim loops, outcomes sent on a connection "
            "of their own, through "
            f"`jqs serve --no-worker`; {each}",
        )
    )
    rate, jobs = 200, 500 if ctx.quick else 2000
    latency = await _http_latency(ctx, rate, jobs)
    ctx.extra["http_latency"] = {"latencies": latency.latencies, "achieved": latency.achieved}
    p99 = percentile(latency.latencies, 99)
    ctx.rows.append(
        Row(
            ctx.title(f"pickup latency p99 at {rate} jobs/s, waiting HTTP claim (ms)"),
            p99,
            percentile(latency.latencies, 50),
            "ms",
            "its own p50",
            "<= 10 ms",
            higher_is_better=False,
            met=p99 <= 10,
            note=f"{jobs} jobs: POST /jobs returned -> the worker's waiting claim answered "
            "with the job (two claims kept open; bench/http_worker.py, a lean HTTP/1.1 client "
            f"on uvloop, not httpx); achieved {latency.achieved:.0f}/s",
        )
    )
    # The same through the Python worker, whose HTTP client is httpx: what a Python user's
    # worker over HTTP sees, for comparison (no target).
    sdk = await _http_latency(ctx, rate, jobs, sdk=True)
    ctx.extra["http_latency_sdk"] = {"latencies": sdk.latencies, "achieved": sdk.achieved}
    for pct in (50, 99):
        ctx.rows.append(
            Row(
                ctx.title(f"pickup latency p{pct} at {rate} jobs/s, `jqs worker --url` (ms)"),
                percentile(sdk.latencies, pct),
                float("nan"),
                "ms",
                "none",
                "",
                higher_is_better=False,
                note=f"{jobs} jobs: POST /jobs returned -> the handler started in `jqs worker "
                "--url` (httpx, default settings); achieved "
                f"{sdk.achieved:.0f}/s",
            )
        )
