"""Database: where the jobs live, started and stopped as one service.

It starts the embedded server when there is no URL, opens the pool, applies migrations, and
hands out the PostgresStore built on that pool.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from jqs.errors import DatabaseUnavailable
from jqs.logging import get_logger
from jqs.store.db import create_pool, redact_dsn
from jqs.store.embedded import EmbeddedPostgres
from jqs.store.migrate import migrate
from jqs.store.postgres import PostgresStore

log = get_logger(__name__)


class Database:
    """Where the jobs live: an external PostgreSQL (url) or the embedded one (data_dir)."""

    def __init__(
        self,
        *,
        url: str | None,
        data_dir: Path,
        pool_min: int = 1,
        pool_max: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float | None = 30.0,
        close_timeout: float = 10.0,
        transaction_pooler: bool = False,
    ) -> None:
        self._url = url
        self._embedded = EmbeddedPostgres(data_dir) if url is None else None
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._close_timeout = close_timeout
        self._transaction_pooler = transaction_pooler
        self._pool: asyncpg.Pool | None = None
        self._store: PostgresStore | None = None
        self.dsn: str | None = url

    @property
    def store(self) -> PostgresStore:
        """The store on this database; only valid between start() and stop()."""
        if self._store is None:
            raise RuntimeError("Database.start() has not run")
        return self._store

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool (for the notifier); only valid between start() and stop()."""
        if self._pool is None:
            raise RuntimeError("Database.start() has not run")
        return self._pool

    async def start(self, *, apply_migrations: bool = True) -> None:
        """Start the embedded server if needed, open the pool, migrate. Idempotent."""
        if self._pool is not None:
            return
        if self._embedded is not None:
            self.dsn = await asyncio.to_thread(self._embedded.start)
            log.info("embedded_postgres_started", data_dir=str(self._embedded.data_dir))
        assert self.dsn is not None
        try:
            pool = await self._connect(self.dsn)
        except BaseException:
            await self._stop_embedded()
            raise
        try:
            if apply_migrations:
                async with pool.acquire() as conn:
                    applied = await migrate(conn)
                log.info("migrations_checked", applied=applied)
        except BaseException:
            pool.terminate()
            await self._stop_embedded()
            raise
        self._pool = pool
        self._store = PostgresStore(pool)
        log.info("database_connected", dsn=redact_dsn(self.dsn))

    async def _connect(self, dsn: str) -> asyncpg.Pool:
        """Open the pool, retrying for up to connect_timeout while the server comes up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout
        while True:
            try:
                return await create_pool(
                    dsn,
                    min_size=self._pool_min,
                    max_size=self._pool_max,
                    connect_timeout=self._connect_timeout,
                    command_timeout=self._command_timeout,
                    transaction_pooler=self._transaction_pooler,
                )
            except DatabaseUnavailable as exc:
                if loop.time() >= deadline:
                    raise
                log.warning("database_waiting", error=str(exc), dsn=redact_dsn(dsn))
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        """Close the pool (waiting up to close_timeout), then stop the embedded server."""
        pool, self._pool = self._pool, None
        self._store = None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._close_timeout)
            except TimeoutError:
                pool.terminate()
        await self._stop_embedded()

    async def _stop_embedded(self) -> None:
        if self._embedded is not None and self._embedded.running:
            await asyncio.to_thread(self._embedded.stop)
            log.info("embedded_postgres_stopped", data_dir=str(self._embedded.data_dir))
