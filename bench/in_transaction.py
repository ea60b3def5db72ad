"""`jqs.enqueue` in the caller's transaction vs a bare INSERT of the same row.

Each transaction is what an application does: BEGIN, its job, COMMIT. JQS's writes the row,
its `job.enqueued` event and the workers' notification, in a subtransaction of the database's
jqs_enqueue() (one round trip, as the INSERT); the baseline writes only the row, with no JQS
code between it and asyncpg: what an application would write itself, encoding its dict to
JSON text (asyncpg takes jsonb as text) and inserting it. Both run on one connection, one
transaction each in turn (the order flipping every turn), so that whatever drifts in the
server (its WAL flushes, its caches, the machine's load) falls on both alike; each round's
mean per transaction is taken, and the medians over the rounds are compared.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg

from bench.scenarios import Context, Row
from jqs.client import enqueue

ROUNDS = 6
TARGET = 1.2  # times the bare INSERT's
PAYLOAD = {"task": "noop", "to": "user@example.com", "subject": "Hello"}
# The row POST /jobs writes for PAYLOAD with the default options.
BARE_INSERT = (
    "INSERT INTO jobs (payload, queue, priority, run_at, max_attempts, timeout, created_by) "
    "VALUES ($1::jsonb, 'default', 0, now(), 3, NULL, NULL) RETURNING id"
)

Transaction = Callable[[asyncpg.Connection], Awaitable[None]]


async def _with_jqs(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await enqueue(conn, PAYLOAD)


async def _bare(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await conn.fetchval(BARE_INSERT, json.dumps(PAYLOAD))


async def _in_turns(
    conn: asyncpg.Connection, kinds: dict[str, Transaction], n: int
) -> dict[str, float]:
    """Microseconds per transaction of each kind, over `n` turns in which each runs once."""
    spent = dict.fromkeys(kinds, 0.0)
    order = list(kinds.items())
    for turn in range(n):
        for name, each in order if turn % 2 else reversed(order):
            began = time.perf_counter()
            await each(conn)
            spent[name] += time.perf_counter() - began
    return {name: total / n * 1e6 for name, total in spent.items()}


async def enqueue_in_transaction(ctx: Context) -> None:
    """jqs.enqueue in the caller's transaction: at most 1.2x the time of a bare INSERT."""
    n = 200 if ctx.quick else 3000
    rounds = 1 if ctx.quick else ROUNDS
    dsn = await ctx.server.fresh()
    conn = await asyncpg.connect(dsn)
    kinds: dict[str, Transaction] = {"jqs": _with_jqs, "bare": _bare}
    times: dict[str, list[float]] = {name: [] for name in kinds}
    try:
        await _in_turns(conn, kinds, 50)  # statements prepared, caches warm
        for _ in range(rounds):
            for name, per in (await _in_turns(conn, kinds, n)).items():
                times[name].append(per)
    finally:
        await conn.close()
    ctx.extra["enqueue_runs"] = times
    bare_us = statistics.median(times["bare"])
    ctx.rows.append(
        Row(
            "jqs.enqueue in the caller's transaction (us per transaction)",
            statistics.median(times["jqs"]),
            bare_us,
            "us",
            "a bare INSERT of the same row into jobs (its payload encoded by json.dumps), "
            "in a transaction of its own",
            "<= 1.2x",
            higher_is_better=False,
            met=statistics.median(times["jqs"]) <= TARGET * bare_us,
            note=f"{n} transactions (BEGIN, the job, COMMIT) of each, in turns on one "
            f"connection; median of {rounds} rounds' means; JQS also writes the job's event "
            "and the workers' notification, in a subtransaction (jqs_enqueue(), one statement)",
        )
    )
