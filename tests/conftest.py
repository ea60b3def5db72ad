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


@pytest.fixture(scope="session")
def suite_bouncer(pg_server: PgTestServer) -> Iterator[bouncer.PgBouncer]:
    """PgBouncer in transaction mode with room for a whole store's pool: every test on the
    `database` fixture runs through it once."""
    reason = bouncer.why_not()
    if reason is not None:
        pytest.skip(f"PgBouncer runs skipped: {reason}")
    running = bouncer.PgBouncer(pg_server.admin_dsn, pool_size=10)
    try:
        running.start()
        yield running
    finally:
        running.close()


@pytest.fixture(params=["direct", "pgbouncer"])
async def database(
    request: pytest.FixtureRequest, dsn: str, tmp_path: Path
) -> AsyncIterator[Database]:
    """The store's database, connected directly and then through PgBouncer in transaction
    mode (JQS_DATABASE_POOLER=transaction). `dsn` stays direct, as JQS_LISTEN_URL does: a
    test's listeners and its look behind the store's back use it."""
    pooled = request.param == "pgbouncer"
    url = request.getfixturevalue("suite_bouncer").dsn(dsn) if pooled else dsn
    db = Database(url=url, data_dir=tmp_path / "unused", pool_max=10, transaction_pooler=pooled)
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
