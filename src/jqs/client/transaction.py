"""Enqueue a job inside the application's own database transaction.

    async with conn.transaction():
        order_id = await conn.fetchval("INSERT INTO orders ... RETURNING id")
        await jqs.enqueue(conn, {"task": "ship_order", "order_id": order_id}, queue="shipping")

The job exists only if the transaction commits, and workers hear of it when it does (a
NOTIFY, which PostgreSQL delivers at commit). The job is checked here before anything is
sent, so that a bad one raises InvalidJob and leaves the transaction as it was; what the
database still refuses is undone to a savepoint and raised as EnqueueError, and the
transaction goes on. Outside a transaction the job is committed at once.

Unlike POST /jobs, no task defaults apply (the server's `@task(queue=..., max_attempts=...)`
are not known here): pass the options the task needs. A queue's `max_queued` bound is not
checked either.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from jqs.client.errors import EnqueueError, InvalidJob
from jqs.namedsql import Query, parse_queries

if TYPE_CHECKING:
    import asyncpg

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
    return parse_queries(text)["job_enqueue"]


async def enqueue(
    conn: asyncpg.Connection,
    payload: dict[str, Any],
    *,
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
    run_at: datetime | None = None,
    delay: float | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    timeout: float | None = None,  # noqa: ASYNC109 - the job's option, as POST /jobs names it
    created_by: str | None = None,
    savepoint: bool = True,
) -> Enqueued:
    """Write a job on `conn` (asyncpg), in its transaction if one is open.

    `run_at` (a time with a zone) or `delay` (seconds): not started before then.
    `timeout`: seconds one attempt may run. Raises InvalidJob for a job POST /jobs would
    refuse, EnqueueError when the database refuses it.

    `savepoint=False` spares the savepoint's two round trips inside a transaction: a job
    refused here (InvalidJob) still leaves the transaction usable, but one the database
    refuses (a trigger, a missing table, a lock timeout) then aborts it.
    """
    values = _values(
        payload,
        queue=queue,
        priority=priority,
        run_at=run_at,
        delay=delay,
        max_attempts=max_attempts,
        timeout=timeout,
        created_by=created_by,
    )
    query = _query()
    args = [values[name] for name in query.params]
    import asyncpg  # the application's own: this package does not depend on it

    try:
        if savepoint and conn.is_in_transaction():
            async with conn.transaction():  # a savepoint: an error undoes only this
                row = await conn.fetchrow(query.sql, *args)
        else:
            row = await conn.fetchrow(query.sql, *args)
    except asyncpg.PostgresError as exc:
        raise EnqueueError(f"the database refused the job: {exc}") from exc
    assert row is not None
    return Enqueued(row["id"], row["task"], queue, row["created_at"], row["run_at"])


def _values(
    payload: dict[str, Any],
    *,
    queue: str,
    priority: int,
    run_at: datetime | None,
    delay: float | None,
    max_attempts: int,
    timeout: float | None,
    created_by: str | None,
) -> dict[str, Any]:
    """The statement's parameters, once the job passes the checks POST /jobs makes."""
    if not isinstance(payload, dict):
        raise InvalidJob(
            f"the payload must be a dict (a JSON object), not {type(payload).__name__}"
        )
    try:
        text = json.dumps(payload, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidJob(f"the payload is not JSON: {exc}") from None
    if "\\u0000" in text and _holds_nul(payload):
        raise InvalidJob("the payload's strings may not contain NUL (\\u0000)")
    task = payload.get("task")
    shown = task if isinstance(task, str) else (None if task is None else json.dumps(task))
    if shown is not None and len(shown) > MAX_TASK_LENGTH:
        raise InvalidJob(f"payload.task is {len(shown)} characters long; at most {MAX_TASK_LENGTH}")
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
    return {
        "payload": text,
        "queue": queue,
        "priority": priority,
        "run_at": run_at,
        "delay": float(delay or 0.0),
        "max_attempts": max_attempts,
        "timeout": None if timeout is None else float(timeout),
        "created_by": created_by,
        "channel": CHANNEL,
    }


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
