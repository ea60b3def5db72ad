"""JQS's connections as a connection pooler in front of PostgreSQL sees them."""

from __future__ import annotations

from urllib.parse import urlsplit

import asyncpg
import pytest

from jqs.errors import DatabaseUnavailable
from jqs.store.db import Db, create_pool
from jqs.store.queries import session_settings
from tests.support.startup_proxy import StartupRecorder

# What PgBouncer accepts in a startup packet; any other parameter fails the connection
# ("unsupported startup parameter") unless the operator lists it to be ignored.
_POOLER_ACCEPTS = {
    "user",
    "database",
    "application_name",
    "client_encoding",
    "datestyle",
    "timezone",
    "standard_conforming_strings",
}


async def test_sessions_are_configured_after_a_startup_a_pooler_accepts(dsn: str) -> None:
    recorder = StartupRecorder(dsn)
    async with recorder.running() as proxied:
        pool = await create_pool(proxied, min_size=1, max_size=1, connect_timeout=10)
        try:
            names = list(session_settings())
            values = await pool.fetchval(
                "SELECT array_agg(current_setting(n) ORDER BY o) "
                "FROM unnest($1::text[]) WITH ORDINALITY AS s(n, o)",
                names,
            )
            app = await pool.fetchval("SELECT current_setting('application_name')")
        finally:
            await pool.close()
    assert recorder.seen, "the pool connected through the proxy"
    for parameters in recorder.seen:
        assert set(parameters) <= _POOLER_ACCEPTS, parameters
    assert dict(zip(names, values, strict=True)) == session_settings()
    assert session_settings() == {
        "plan_cache_mode": "force_generic_plan",
        "enable_seqscan": "off",
        "jit": "off",
    }
    assert app == "jqs"


async def test_a_read_only_server_is_a_503_and_the_pool_starts_over(dsn: str) -> None:
    """A connection left on a server that turned read-only (a standby after a failover)
    fails with DatabaseUnavailable, and the pool replaces it: once writes work again, the
    next call succeeds instead of failing on the same connection."""
    database = urlsplit(dsn).path.lstrip("/")
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    pool = await create_pool(dsn, min_size=2, max_size=2, connect_timeout=10)
    try:
        db = Db(pool)
        with pytest.raises(DatabaseUnavailable, match="read-only") as caught:
            await db.execute("worker_gone", id="w-1")
        assert isinstance(caught.value.__cause__, asyncpg.ReadOnlySQLTransactionError)
        await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
        # Each of the pool's connections began read-only; all of them were replaced.
        for _ in range(4):
            await db.execute("worker_gone", id="w-1")
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
        await admin.close()
        await pool.close()
