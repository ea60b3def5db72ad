"""Shared fixtures: a real PostgreSQL for every test that needs one, isolated per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from jqs.logging import configure_logging
from jqs.store import Database, PostgresStore
from tests.support import pgbouncer as bouncer
from tests.support.pg import PgTestServer, server_dir

configure_logging("warning", cache=False)


@pytest.fixture(scope="session")
async def pg_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PgTestServer]:
    # Not in pytest's temp root: see server_dir.
    with server_dir(keep_logs_in=tmp_path_factory.mktemp("pg")) as home:
        server = PgTestServer(home / "data")
        await server.start()
        yield server
        await server.stop()


@pytest.fixture(scope="session")
def pgbouncer(pg_server: PgTestServer) -> Iterator[bouncer.PgBouncer]:
    """PgBouncer in transaction mode in front of the test server (skips where it cannot
    run); `pgbouncer.dsn(dsn)` leads to a test's database through it."""
    reason = bouncer.why_not()
    if reason is None and "host=/" in pg_server.admin_dsn:
        reason = "it fronts a server on TCP; the embedded test server listens on a Unix socket"
    if reason is not None:
        pytest.skip(f"PgBouncer tests skipped: {reason}")
    running = bouncer.PgBouncer(pg_server.admin_dsn, pool_size=2)
    try:
        running.start()
        yield running
    finally:
        running.close()


@pytest.fixture
def pg_tmp_path(tmp_path: Path) -> Iterator[Path]:
    """tmp_path for a test that starts a PostgreSQL of its own (not in pytest's temp root)."""
    with server_dir(keep_logs_in=tmp_path) as path:
        yield path


@pytest.fixture
async def dsn(pg_server: PgTestServer) -> AsyncIterator[str]:
    """A migrated database of this test's own."""
    async with pg_server.database() as url:
        yield url


@pytest.fixture
async def database(dsn: str, tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(url=dsn, data_dir=tmp_path / "unused", pool_max=10)
    await db.start()
    yield db
    await db.stop()


@pytest.fixture
def store(database: Database) -> PostgresStore:
    return database.store


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test database, for looking behind the store's back."""
    connection = await asyncpg.connect(dsn)
    yield connection
    await connection.close()
