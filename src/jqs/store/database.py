"""asyncpg connection pools with JQS's JSONB codec, and driver errors mapped to ours."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import orjson

from jqs.errors import DatabaseUnavailable, StoreError
from jqs.jsonutil import RawJSON
from jqs.store.queries import q

# JSONB's binary wire format is a version byte (1) followed by the JSON text.
_JSONB_VERSION = b"\x01"

# Every JQS connection's session. JQS's statements are written for generic plans: they
# filter on literal statuses, on ids and on the indexes built for them, so one plan per
# connection serves every run. Left to choose, PostgreSQL planned the claim afresh on every
# run (its custom plan always looked cheaper), about 0.5 ms of a 1.5 ms claim round trip
# on an idle table. A generic plan must suit every value: rows are found through index
# conditions, not joins that could be planned as a hash join over the whole table (the
# claim's UPDATE, the batched completion and the pruner take arrays of ids).
#
# A generic plan is made once, at a statement's first run on the connection, and kept until
# the table's statistics change. Made while the table held a page of rows, every plan read
# the table whole (even a lookup by primary key), and kept doing so as it grew: in the
# bench, p99 pickup latency at 1000 jobs/s went from 6 to 19 ms. Sequential scans are
# therefore off: every statement of the hot path has an index, so its plan is the one a
# big table gets, whatever the size when it was made. A statement with no index to use
# still scans the table (the planner only avoids a disabled path when it has another), but
# before PostgreSQL 18 its cost then looks huge (a disabled path costs 1e10) and would
# trigger JIT compilation on every run; JIT is off, it never pays for statements this short.
# Listings, whose best index depends on the values asked for, and the counts over the whole
# table plan each run with every path allowed, in their own transaction (`db_plan_freely`).
#
# These are SET once the connection is open (`db_session_configure`), not sent as startup
# parameters: PgBouncer refuses a connection whose startup packet names a setting it does
# not track, and it tracks application_name, which is all STARTUP_SETTINGS holds.
SESSION_SETTINGS = {
    "plan_cache_mode": "force_generic_plan",
    "enable_seqscan": "off",
    "jit": "off",
}
STARTUP_SETTINGS = {"application_name": "jqs"}


def _encode_jsonb(value: Any) -> bytes:
    if isinstance(value, RawJSON):
        return _JSONB_VERSION + value
    return _JSONB_VERSION + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.execute(
        q("db_session_configure"), list(SESSION_SETTINGS), list(SESSION_SETTINGS.values())
    )
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )


async def _keep_session(_: asyncpg.Connection) -> None:
    """Return a connection to the pool without asyncpg's default reset query.

    That query (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) is one more round trip
    after every statement, which on the hot path doubled the time a claim or an insert
    held its caller. JQS leaves no session state behind: its advisory locks are
    transaction-scoped, LISTEN has a connection of its own, it never uses cursors, and its
    only SET is SET LOCAL (SESSION_SETTINGS are set once, when the connection opens).
    asyncpg still rolls back a transaction left open before calling this.
    """


_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
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


@contextlib.contextmanager
def wrap_errors(
    error: type[StoreError] = StoreError, what: str = "database error"
) -> Iterator[None]:
    """Re-raise driver errors as `error` (DatabaseUnavailable for lost connections)."""
    try:
        yield
    except _CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc
    except TimeoutError as exc:
        raise DatabaseUnavailable("database did not answer in time") from exc
    except asyncpg.PostgresError as exc:
        raise error(f"{what}: {type(exc).__name__}: {exc}") from exc


async def create_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    connect_timeout: float,
    command_timeout: float | None = None,
) -> asyncpg.Pool:
    """Open a pool whose connections speak JSONB through orjson.

    `command_timeout` bounds every statement, so a connection that a network fault left
    hanging fails (DatabaseUnavailable) instead of holding its caller forever.
    """
    with wrap_errors():
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min(min_size, max_size),
            max_size=max_size,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            init=_init_connection,
            reset=_keep_session,
            server_settings=STARTUP_SETTINGS,
        )
    assert pool is not None
    return pool


@contextlib.asynccontextmanager
async def planned_freely(
    pool: asyncpg.Pool,
) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
    """A connection in a read-only transaction whose statements are planned for their
    values, sequential scans allowed (`db_plan_freely`): for listings and whole-table counts."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(q("db_plan_freely"))
        yield conn


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced, for logs."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else dsn
