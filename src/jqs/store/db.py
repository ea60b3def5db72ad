"""Db: runs named queries on an asyncpg pool. The one place driver errors become JQS's.

Parameters are bound by name (jqs.store.queries), from a dataclass, keywords, or both
(keywords win). A `-- plan: per-value` query runs in a read-only transaction planned for
its values. Every driver error leaves as StoreError, or DatabaseUnavailable when the
connection was lost or a statement outlived its timeout, with the cause kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import orjson

from jqs.errors import DatabaseUnavailable, StoreError, TransientError
from jqs.jsonutil import RawJSON
from jqs.logging import get_logger
from jqs.store.queries import Query, q, session_settings

log = get_logger(__name__)

# JSONB's binary wire format is a version byte (1) followed by the JSON text.
_JSONB_VERSION = b"\x01"
# Only application_name goes in the startup packet: PgBouncer refuses a connection whose
# startup packet names a setting it does not track. The rest is SET once connected.
STARTUP_SETTINGS = {"application_name": "jqs"}
# asyncpg's default: named statements, prepared once per connection.
STATEMENT_CACHE_SIZE = 100

# What a lost or unreachable server raises (asyncpg raises InternalClientError, among others,
# when no host of a multi-host URL is a primary yet).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.InterfaceError,
    # Raised when a connection is left in a broken state by a cut mid-query.
    asyncpg.exceptions.InternalClientError,
)


# The server is a standby (in recovery) or was made read-only: after a failover, a
# connection made to the old primary may stay on it. Writes cannot go on there; the pool
# drops its connections so that new ones find the primary (target_session_attrs).
_READ_ONLY_ERRORS = (asyncpg.exceptions.ReadOnlySQLTransactionError,)

# PostgreSQL gave up on the statement so that another could go on; it may succeed again.
_TRANSIENT_ERRORS = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)


@contextlib.contextmanager
def driver_errors(
    error: type[StoreError] = StoreError, what: str = "database error"
) -> Iterator[None]:
    """Re-raise driver errors as `error` (DatabaseUnavailable for lost connections)."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc
    except TimeoutError as exc:
        raise DatabaseUnavailable("database did not answer in time") from exc
    except _READ_ONLY_ERRORS as exc:
        raise DatabaseUnavailable("database is read-only (a standby, or failing over)") from exc
    except _TRANSIENT_ERRORS as exc:
        raise TransientError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except asyncpg.PostgresError as exc:
        raise error(f"{what}: {type(exc).__name__}: {exc}") from exc


def _encode_jsonb(value: Any) -> bytes:
    if isinstance(value, RawJSON):
        return _JSONB_VERSION + value
    return _JSONB_VERSION + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(memoryview(data)[1:])  # a view: no copy of the text


async def _init_connection(conn: asyncpg.Connection) -> None:
    settings = session_settings()
    query = q("db_session_configure")
    await conn.execute(query.sql, list(settings), list(settings.values()))
    await _init_pooled_connection(conn)


async def _init_pooled_connection(conn: asyncpg.Connection) -> None:
    """A connection through a pooler in transaction mode: each transaction may run on
    another server session, so a session setting would reach other clients of the pooler's
    session and miss JQS's next transaction. JQS sets none there; its settings (queries.sql)
    shape plans for speed, and an operator may give them to JQS's role instead
    (ALTER ROLE ... SET)."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_encode_jsonb, decoder=_decode_jsonb, format="binary"
    )


async def _keep_session(_: asyncpg.Connection) -> None:
    """Return a connection to the pool without asyncpg's default reset query.

    That query (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) is one more round trip
    after every statement, which on the hot path doubled the time a claim or an insert held
    its caller. JQS leaves no session state behind: its advisory locks are
    transaction-scoped, LISTEN has a connection of its own, it never uses cursors, and its
    only SET outside `db_session_configure` is SET LOCAL. asyncpg still rolls back a
    transaction left open before calling this.
    """


def _args(query: Query, params: object, values: dict[str, Any]) -> list[Any]:
    try:
        return [values[name] if name in values else getattr(params, name) for name in query.params]
    except AttributeError as exc:
        raise TypeError(f"query {query.name!r} needs parameter {exc.name!r}") from None


Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class Db:
    """Named queries on a pool (or on one connection inside `transaction`)."""

    def __init__(self, pool: asyncpg.Pool, conn: Connection | None = None) -> None:
        self._pool = pool
        self._conn = conn

    @property
    def _target(self) -> Any:
        return self._conn if self._conn is not None else self._pool

    async def fetch(
        self, name: str, params: object = None, /, **values: Any
    ) -> list[asyncpg.Record]:
        """All rows of query `name`."""
        query = q(name)
        args = _args(query, params, values)
        async with self._errors():
            if query.per_value and self._conn is None:
                async with self._per_value() as conn:
                    return await conn.fetch(query.sql, *args)
            return await self._target.fetch(query.sql, *args)  # type: ignore[no-any-return]

    async def fetchrow(
        self, name: str, params: object = None, /, **values: Any
    ) -> asyncpg.Record | None:
        """The first row of query `name`, or None."""
        rows = await self.fetch(name, params, **values)
        return rows[0] if rows else None

    async def fetchval(self, name: str, params: object = None, /, **values: Any) -> Any:
        """The first column of the first row of query `name`, or None."""
        query = q(name)
        args = _args(query, params, values)
        async with self._errors():
            return await self._target.fetchval(query.sql, *args)

    async def execute(self, name: str, params: object = None, /, **values: Any) -> None:
        """Run query `name` for its effect."""
        query = q(name)
        args = _args(query, params, values)
        async with self._errors():
            await self._target.execute(query.sql, *args)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Db]:
        """A Db whose queries share one transaction, committed when the block ends."""
        async with self._errors(), self._pool.acquire() as conn, conn.transaction():
            yield Db(self._pool, conn)

    @contextlib.asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        """driver_errors, and a pool reset when the server turned out to be read-only."""
        try:
            with driver_errors():
                yield
        except DatabaseUnavailable as exc:
            if isinstance(exc.__cause__, _READ_ONLY_ERRORS):
                await expire_read_only(self._pool)
            raise

    @contextlib.asynccontextmanager
    async def _per_value(self) -> AsyncIterator[Connection]:
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            await conn.execute(q("db_plan_per_value").sql)
            yield conn


async def expire_read_only(pool: asyncpg.Pool) -> None:
    """Replace every connection of `pool`: one of them reached a server in recovery, so the
    others may well be there too. Connections in use are closed when they come back."""
    log.warning("database_read_only_pool_reset")
    await pool.expire_connections()


async def create_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    connect_timeout: float,
    command_timeout: float | None = None,
    transaction_pooler: bool = False,
) -> asyncpg.Pool:
    """Open a pool whose connections speak JSONB through orjson, with the session settings
    of queries.sql. `command_timeout` bounds every statement, so a connection that a network
    fault left hanging fails (DatabaseUnavailable) instead of holding its caller forever.

    `transaction_pooler`: `dsn` is a pooler in transaction mode, where a named prepared
    statement made in one transaction is gone (or another client's) in the next: statements
    are sent unnamed (no statement cache), and no session settings are made."""
    with driver_errors():
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min(min_size, max_size),
            max_size=max_size,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            init=_init_pooled_connection if transaction_pooler else _init_connection,
            reset=_keep_session,
            server_settings=STARTUP_SETTINGS,
            statement_cache_size=0 if transaction_pooler else STATEMENT_CACHE_SIZE,
        )
    assert pool is not None
    return pool


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced, for logs."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else dsn
