"""Shared pieces of the benchmark: a database server, fresh databases, JQS processes, wrk."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from jqs.store.embedded import EmbeddedPostgres
from jqs.store.migrate import migrate

REPO = Path(__file__).resolve().parents[1]


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


class Server:
    """The PostgreSQL every scenario uses: --dsn, or an embedded one in a temp dir."""

    def __init__(self, dsn: str | None) -> None:
        self._embedded = None if dsn else EmbeddedPostgres(Path(tempfile.mkdtemp()) / "pgdata")
        self.dsn = dsn or ""
        self._count = 0
        self._made: list[str] = []

    def start(self) -> None:
        if self._embedded is not None:
            self.dsn = self._embedded.start()

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()

    async def facts(self) -> dict[str, str]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return {
                "postgres": str(await conn.fetchval("SHOW server_version")),
                "synchronous_commit": str(await conn.fetchval("SHOW synchronous_commit")),
            }
        finally:
            await conn.close()

    async def fresh(self, *, schema: bool = True, keep: Sequence[str] = ()) -> str:
        """A new empty database (with JQS's schema unless told otherwise); returns its DSN.

        The databases made before are dropped (but those in `keep`): each scenario is done
        with its database once it asks for the next, and autovacuum working through an old
        one would take CPU from the measurement under way.
        """
        self._count += 1
        name = f"bench_{os.getpid()}_{self._count}"
        admin = await asyncpg.connect(self.dsn)
        try:
            kept = {urlsplit(dsn).path.lstrip("/") for dsn in keep}
            for old in [d for d in self._made if d not in kept]:
                await admin.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
                self._made.remove(old)
            await admin.execute(f'CREATE DATABASE "{name}"')
            self._made.append(name)
        finally:
            await admin.close()
        dsn = with_database(self.dsn, name)
        if schema:
            conn = await asyncpg.connect(dsn)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        return dsn


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


def cpu_jiffies() -> tuple[int, int]:
    """(stolen, total) CPU time of the whole machine so far, from /proc/stat.

    Steal is time the hypervisor gave this virtual machine's CPUs to someone else: on a
    shared host it slows everything down, unevenly, and is worth having on record.
    """
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:9]]
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


def wrk_post(url: str, body: str, *, seconds: int, connections: int, threads: int = 1) -> float:
    """POST `body` as fast as wrk can for `seconds`; returns successful requests per second."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [[{body}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
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
