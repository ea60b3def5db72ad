"""JQS behind PgBouncer in transaction mode (JQS_DATABASE_POOLER=transaction)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from jqs.jsonutil import RawJSON
from jqs.models import NewJob
from jqs.store import Database
from tests.support.pgbouncer import PgBouncer


async def test_many_clients_share_one_server_session(
    pgbouncer: PgBouncer, dsn: str, tmp_path: Path
) -> None:
    """With one server session behind PgBouncer, every JQS connection's statements run on
    it in turn: named prepared statements would collide there ("already exists" or "does not
    exist"), and a session setting would outlive the transaction that made it."""
    one = PgBouncer(dsn, pool_size=1)
    await asyncio.to_thread(one.start)
    db = Database(
        url=one.dsn(dsn),
        data_dir=tmp_path / "unused",
        pool_min=6,
        pool_max=6,
        transaction_pooler=True,
    )
    try:
        await db.start(apply_migrations=False)

        async def round_trip(n: int) -> None:
            [inserted] = await db.store.insert([NewJob(RawJSON(b'{"task": "t", "n": %d}' % n))])
            job = await db.store.get(inserted.id)
            assert job.id == inserted.id

        for _ in range(3):
            await asyncio.gather(*(round_trip(n) for n in range(30)))
        conn = await asyncpg.connect(one.dsn(dsn), statement_cache_size=0)
        try:
            jit = await conn.fetchval("SELECT current_setting('jit')")
        finally:
            await conn.close()
    finally:
        await db.stop()
        await asyncio.to_thread(one.close)
    assert jit == "on", "JQS left no session setting on the pooler's server session"
