"""The store contract: every test here runs against PostgresStore and MemoryStore alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from jqs.store import Database, Store
from jqs.testing import ManualClock, MemoryStore
from tests.support.pg import PgTestServer


@dataclass
class Subject:
    """A store under test, and how to read its clock and let its time pass."""

    store: Store
    kind: str
    _clock: ManualClock | None = None
    _dsn: str | None = None

    async def now(self) -> datetime:
        if self._clock is not None:
            return self._clock.now()
        assert self._dsn is not None
        conn = await asyncpg.connect(self._dsn)
        try:
            value: datetime = await conn.fetchval("SELECT now()")
        finally:
            await conn.close()
        return value

    async def pass_time(self, seconds: float) -> None:
        """Let `seconds` pass on the store's clock (the database's runs on its own)."""
        if self._clock is not None:
            await self._clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)


@pytest.fixture(params=["postgres", "memory", "pgbouncer"])
async def subject(
    request: pytest.FixtureRequest, pg_server: PgTestServer, tmp_path: Path
) -> AsyncIterator[Subject]:
    if request.param == "memory":
        clock = ManualClock()
        yield Subject(MemoryStore(clock), "memory", _clock=clock)
        return
    pooled = request.param == "pgbouncer"
    async with pg_server.database() as dsn:
        # PostgresStore through PgBouncer in transaction mode; the test looks behind its
        # back (Subject.now and the like) directly.
        url = request.getfixturevalue("pgbouncer").dsn(dsn) if pooled else dsn
        db = Database(url=url, data_dir=tmp_path / "unused", pool_max=4, transaction_pooler=pooled)
        await db.start(apply_migrations=False)
        try:
            yield Subject(db.store, "postgres", _dsn=dsn)
        finally:
            await db.stop()
