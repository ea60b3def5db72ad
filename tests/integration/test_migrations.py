from __future__ import annotations

import asyncio

import asyncpg

from jqs.store.migrate import applied_versions, load_migrations, migrate
from tests.support.pg import PgTestServer


async def test_migrate_is_idempotent(pg_server: PgTestServer) -> None:
    async with pg_server.database(migrated=False) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            assert await applied_versions(conn) == []
            first = await migrate(conn)
            second = await migrate(conn)
            assert first == [m.version for m in load_migrations()]
            assert second == []
            assert await applied_versions(conn) == first
        finally:
            await conn.close()


async def test_concurrent_migrations_apply_once(pg_server: PgTestServer) -> None:
    async with pg_server.database(migrated=False) as dsn:
        conns = [await asyncpg.connect(dsn) for _ in range(8)]
        try:
            results = await asyncio.gather(*(migrate(c) for c in conns))
            applied = [r for r in results if r]
            assert len(applied) == 1, results
            rows = await conns[0].fetch("SELECT version FROM jqs_migrations")
            assert sorted(r["version"] for r in rows) == applied[0]
        finally:
            for c in conns:
                await c.close()


async def test_migrated_schema_has_the_seed_columns(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'jobs'"
    )
    types = {r["column_name"]: r["data_type"] for r in rows}
    assert types["id"] == "bigint"
    assert types["payload"] == "jsonb"
    assert types["status"] == "text"
    assert types["result"] == "jsonb"
    assert types["created_at"] == "timestamp with time zone"
    assert types["updated_at"] == "timestamp with time zone"


async def test_claim_uses_the_partial_runnable_index(conn: asyncpg.Connection) -> None:
    # Enough finished history that a sequential scan would be the wrong plan.
    await conn.execute(
        "INSERT INTO jobs (payload, status) "
        "SELECT jsonb_build_object('task', 'x', 'n', g), 'completed' "
        "FROM generate_series(1, 20000) g"
    )
    await conn.execute('INSERT INTO jobs (payload) VALUES (\'{"task": "x"}\')')
    await conn.execute("ANALYZE jobs")
    rows = await conn.fetch(
        "EXPLAIN (FORMAT TEXT) SELECT id FROM jobs WHERE status = 'queued' AND queue = 'default' "
        "AND run_at <= now() ORDER BY priority DESC, run_at, id LIMIT 5 FOR UPDATE SKIP LOCKED"
    )
    plan = "\n".join(r[0] for r in rows)
    assert "jobs_runnable_idx" in plan, plan


async def test_jobs_are_vacuumed_by_churn_not_by_table_size(conn: asyncpg.Connection) -> None:
    options = await conn.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'jobs'")
    assert set(options) >= {
        "autovacuum_vacuum_scale_factor=0",
        "autovacuum_vacuum_threshold=5000",
        "vacuum_index_cleanup=on",
    }
