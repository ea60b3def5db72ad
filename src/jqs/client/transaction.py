"""Enqueue a job inside the application's own database transaction.

    async with conn.transaction():  # asyncpg, or psycopg's AsyncConnection
        order_id = await conn.fetchval("INSERT INTO orders ... RETURNING id")
        await jqs.enqueue(conn, {"task": "ship_order", "order_id": order_id}, queue="shipping")

    with conn.transaction():  # psycopg's Connection
        jqs.enqueue_sync(conn, {"task": "ship_order", "order_id": order_id}, queue="shipping")

The job exists only if the transaction commits, and workers hear of it when it does (a
NOTIFY, which PostgreSQL delivers at commit). The job is checked here before anything is
sent, so that a bad one raises InvalidJob and leaves the transaction as it was. It is then
written in one round trip by the database's jqs_enqueue() (migration 0012), in a
subtransaction of its own: what the database still refuses is undone there and raised as
EnqueueError, and the transaction goes on. Outside a transaction the job is committed at
once (psycopg, unless in autocommit, opens one as for any statement).

`enqueue` tells the driver from the connection's type, and imports neither: this package
depends on no database driver, and uses the one the application already has.

Unlike POST /jobs, no task defaults apply (the server's `@task(queue=..., max_attempts=...)`
are not known here): pass the options the task needs. A queue's `max_queued` bound is not
checked either.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias, cast

from jqs.client.errors import EnqueueError, InvalidJob
from jqs.namedsql import Query, parse_queries

if TYPE_CHECKING:
    import asyncpg
    import psycopg
    from asyncpg.pool import PoolConnectionProxy

    AsyncDriverConnection: TypeAlias = (
        "asyncpg.Connection[Any] | PoolConnectionProxy[Any] | psycopg.AsyncConnection[Any]"
    )

CHANNEL = "jqs_jobs"  # the workers' (jqs.store.notify)
DEFAULT_QUEUE = "default"
DEFAULT_MAX_ATTEMPTS = 3  # the server's default (JQS_MAX_ATTEMPTS)
# The bounds POST /jobs holds options to (jqs.api.options; a test holds them equal).
QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
PRIORITY_MIN, PRIORITY_MAX = -32768, 32767
MAX_ATTEMPTS = 1000
MAX_TIMEOUT = 7 * 24 * 3600.0
MAX_DELAY = 366 * 24 * 3600.0
MAX_TASK_LENGTH = 200
UNDEFINED_FUNCTION = "42883"  # SQLSTATE: no jqs_enqueue(), the database is not migrated
# One encoder for every call: json.dumps with options builds a new one each time.
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Enqueued:
    """A job just written: its id, and what the database decided for it."""

    id: int
    task: str | None
    queue: str
    created_at: datetime
    run_at: datetime


@cache
def _query() -> Query:
    text = resources.files("jqs.client").joinpath("enqueue.sql").read_text(encoding="utf-8")
    query = parse_queries(text)["job_enqueue"]
    # The payload comes first, then the options in _Options' order.
    assert query.params == ("payload", *_Options.NAMES), query.params
    return query


async def enqueue(
    conn: AsyncDriverConnection,
    payload: dict[str, Any],
    *,
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
    run_at: datetime | None = None,
    delay: float | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    timeout: float | None = None,  # noqa: ASYNC109 - the job's option, as POST /jobs names it
    created_by: str | None = None,
) -> Enqueued:
    """Write a job on `conn` (asyncpg, or psycopg's AsyncConnection), in its transaction if
    one is open.

    `run_at` (a time with a zone) or `delay` (seconds): not started before then.
    `timeout`: seconds one attempt may run. Raises InvalidJob for a job POST /jobs would
    refuse, EnqueueError when the database refuses it; either way the transaction goes on.
    """
    driver = _driver(conn)
    if driver == "psycopg":
        raise TypeError("a psycopg Connection is not awaited: call jqs.enqueue_sync(conn, ...)")
    if driver == "unknown":
        raise TypeError(
            "jqs.enqueue takes an asyncpg connection or a psycopg AsyncConnection, "
            f"not {type(conn).__name__}"
        )
    text = _payload_text(payload)
    options = _options(queue, priority, run_at, delay, max_attempts, timeout, created_by)
    if driver == "asyncpg":
        row = await _on_asyncpg(cast("asyncpg.Connection[Any]", conn), text, options)
    else:
        row = await _on_psycopg_async(cast("psycopg.AsyncConnection[Any]", conn), text, options)
    return _enqueued(row, queue)


def enqueue_sync(
    conn: psycopg.Connection[Any],
    payload: dict[str, Any],
    *,
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
    run_at: datetime | None = None,
    delay: float | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    timeout: float | None = None,
    created_by: str | None = None,
) -> Enqueued:
    """`enqueue` on psycopg's (synchronous) Connection: the same checks, the same row, the
    same notification, the same errors."""
    driver = _driver(conn)
    if driver != "psycopg":
        hint = ": await jqs.enqueue(conn, ...)" if driver != "unknown" else ""
        raise TypeError(
            f"jqs.enqueue_sync takes a psycopg Connection, not {type(conn).__name__}{hint}"
        )
    text = _payload_text(payload)
    options = _options(queue, priority, run_at, delay, max_attempts, timeout, created_by)
    return _enqueued(_on_psycopg(conn, text, options), queue)


Driver = Literal["asyncpg", "psycopg", "psycopg_async", "unknown"]
# By the connection's class: a class's drivers do not change, and enqueue is called often.
_DRIVERS: dict[type, Driver] = {}


def _driver(conn: object) -> Driver:
    """Whose connection `conn` is. A driver the application uses is imported already, so
    only those are looked at: none is imported here."""
    kind = type(conn)
    known = _DRIVERS.get(kind)
    if known is not None:
        return known
    found: Driver = "unknown"
    psycopg = sys.modules.get("psycopg")
    asyncpg = sys.modules.get("asyncpg")
    if psycopg is not None and isinstance(conn, psycopg.AsyncConnection):
        found = "psycopg_async"
    elif psycopg is not None and isinstance(conn, psycopg.Connection):
        found = "psycopg"
    elif asyncpg is not None and isinstance(
        conn, asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
    ):
        found = "asyncpg"
    if found != "unknown":  # an unknown class may be a driver's imported later
        _DRIVERS[kind] = found
    return found


@dataclass(frozen=True, slots=True)
class _Options:
    """A job's options once checked, as the statement takes them after the payload."""

    NAMES: ClassVar[tuple[str, ...]] = (
        "queue",
        "priority",
        "run_at",
        "delay",
        "max_attempts",
        "timeout",
        "created_by",
        "channel",
    )

    args: tuple[Any, ...]  # in NAMES' order

    def named(self, text: str) -> dict[str, Any]:
        return {"payload": text, **dict(zip(self.NAMES, self.args, strict=True))}


async def _on_asyncpg(
    conn: asyncpg.Connection[Any], text: str, options: _Options
) -> Sequence[Any] | None:
    import asyncpg  # the application's own: this package does not depend on it

    try:
        return await conn.fetchrow(_query().sql, text, *options.args)
    except asyncpg.PostgresError as exc:
        raise _refused(str(exc), exc.sqlstate) from exc


async def _on_psycopg_async(
    conn: psycopg.AsyncConnection[Any], text: str, options: _Options
) -> Sequence[Any] | None:
    import psycopg
    from psycopg.rows import tuple_row  # tuples, whatever rows the connection makes otherwise

    try:
        async with conn.cursor(row_factory=tuple_row) as cursor:
            await cursor.execute(_query().pyformat, options.named(text))
            return await cursor.fetchone()
    except psycopg.Error as exc:
        if exc.sqlstate is None:  # not the database's answer: the connection, the driver
            raise
        raise _refused(str(exc), exc.sqlstate) from exc


def _on_psycopg(
    conn: psycopg.Connection[Any], text: str, options: _Options
) -> Sequence[Any] | None:
    import psycopg
    from psycopg.rows import tuple_row

    try:
        with conn.cursor(row_factory=tuple_row) as cursor:
            cursor.execute(_query().pyformat, options.named(text))
            return cursor.fetchone()
    except psycopg.Error as exc:
        if exc.sqlstate is None:
            raise
        raise _refused(str(exc), exc.sqlstate) from exc


def _refused(message: str, sqlstate: str | None) -> EnqueueError:
    """The error for a statement that failed, which aborts the transaction it was in."""
    if sqlstate == UNDEFINED_FUNCTION and "jqs_enqueue" in message:
        message += " (the database is not migrated for this jqs.enqueue: run `jqs migrate`)"
    return EnqueueError(f"the database refused the job: {message}", sqlstate=sqlstate)


def _enqueued(row: Sequence[Any] | None, queue: str) -> Enqueued:
    """The job jqs_enqueue() wrote, or EnqueueError for what it refused and undid."""
    assert row is not None
    if row[4] is not None:
        raise EnqueueError(f"the database refused the job: {row[5]}", sqlstate=row[4])
    return Enqueued(row[0], row[1], queue, row[2], row[3])


def _payload_text(payload: dict[str, Any]) -> str:
    """The payload as the statement takes it, once it passes the checks POST /jobs makes."""
    if not isinstance(payload, dict):
        raise InvalidJob(
            f"the payload must be a dict (a JSON object), not {type(payload).__name__}"
        )
    try:
        text = _JSON.encode(payload)
    except (TypeError, ValueError) as exc:
        raise InvalidJob(f"the payload is not JSON: {exc}") from None
    if "\\u0000" in text and _holds_nul(payload):
        raise InvalidJob("the payload's strings may not contain NUL (\\u0000)")
    task = payload.get("task")
    if task is not None and not isinstance(task, str):
        task = json.dumps(task)
    if task is not None and len(task) > MAX_TASK_LENGTH:
        raise InvalidJob(f"payload.task is {len(task)} characters long; at most {MAX_TASK_LENGTH}")
    return text


# Options checked before: an application passes the same few again and again. Bounded, so
# that callers passing ever-new values (a created_by per user) cannot grow it without end.
_CHECKED: dict[tuple[Any, ...], _Options] = {}
_CHECKED_MAX = 512


def _options(
    queue: str,
    priority: int,
    run_at: datetime | None,
    delay: float | None,
    max_attempts: int,
    timeout: float | None,
    created_by: str | None,
) -> _Options:
    """The options, once they pass the checks POST /jobs makes."""
    # The types are part of the key: True == 1 and 1 == 1.0, and each is checked for its type.
    key: tuple[Any, ...] | None = None
    if run_at is None:  # a time is rarely given twice
        key = (queue, priority, delay, max_attempts, timeout, created_by, type(priority))
        key += (type(delay), type(max_attempts), type(timeout), type(created_by))
        try:
            known = _CHECKED.get(key)
        except TypeError:  # unhashable, so not a valid option: the checks below say which
            key = None
        else:
            if known is not None:
                return known
    if not isinstance(queue, str) or not QUEUE_NAME.match(queue):
        raise InvalidJob(
            f"queue {queue!r}: a queue name is 1-100 characters, letters, digits and _ . : - "
            "(starting with a letter or digit)"
        )
    _whole("priority", priority, PRIORITY_MIN, PRIORITY_MAX)
    _whole("max_attempts", max_attempts, 1, MAX_ATTEMPTS)
    if timeout is not None:
        _number("timeout", timeout, MAX_TIMEOUT, above_zero=True)
    if run_at is not None and delay is not None:
        raise InvalidJob("give run_at or delay, not both")
    if run_at is not None and (not isinstance(run_at, datetime) or run_at.tzinfo is None):
        raise InvalidJob("run_at must be a datetime with a time zone")
    if delay is not None:
        _number("delay", delay, MAX_DELAY, above_zero=False)
    checked = _Options(
        (
            queue,
            priority,
            run_at,
            float(delay or 0.0),
            max_attempts,
            None if timeout is None else float(timeout),
            created_by,
            CHANNEL,
        )
    )
    if key is not None:
        if len(_CHECKED) >= _CHECKED_MAX:
            _CHECKED.clear()
        _CHECKED[key] = checked
    return checked


def _whole(name: str, value: object, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise InvalidJob(f"{name} must be a whole number from {low} to {high}, not {value!r}")


def _number(name: str, value: object, high: float, *, above_zero: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        number = float(value)  # type: ignore[arg-type]
        ok = (number > 0 if above_zero else number >= 0) and number <= high
    if not ok:
        low = "above 0" if above_zero else "at least 0"
        raise InvalidJob(f"{name} must be a number of seconds {low} and at most {high:g}")


def _holds_nul(value: object) -> bool:
    """Whether a string in `value` (a key or a value, at any depth) holds NUL."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False
