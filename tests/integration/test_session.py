"""JQS's connections as a connection pooler in front of PostgreSQL sees them."""

from __future__ import annotations

from jqs.store.db import create_pool
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
