"""JobStore: every read and write of the `jobs` table, and nothing else."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from jqs.errors import JobNotFound
from jqs.jsonutil import RawJSON
from jqs.models import (
    ClaimedJob,
    ClaimResult,
    EnqueueOptions,
    InsertOutcome,
    Job,
    JobFilter,
    JobStatus,
    NewJob,
    NewJobs,
    RescuedJob,
    shared_options,
)
from jqs.store.database import planned_freely, wrap_errors
from jqs.store.queries import q

# Largest value of PostgreSQL's bigint: ids beyond it cannot exist.
MAX_JOB_ID = 2**63 - 1
# Constants every JQS process agrees on: advisory locks of the one-at-a-time maintenance.
RESCUER_LOCK_KEY = 0x4A51_5300_0002
PRUNER_LOCK_KEY = 0x4A51_5300_0003
# How long a process trusts its list of limited queues (a stale list is still safe).
LIMITS_CACHE_SECONDS = 1.0


def _job(row: asyncpg.Record) -> Job:
    return Job(
        id=row["id"],
        payload=row["payload"],
        status=JobStatus(row["status"]),
        result=row["result"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        task=row["task"],
        queue=row["queue"],
        priority=row["priority"],
        run_at=row["run_at"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        timeout_seconds=row["timeout_seconds"],
        cancel_requested=row["cancel_requested_at"] is not None,
        errors=row["errors"],
    )


def _option_values(o: EnqueueOptions) -> tuple[object, ...]:
    """What the batch inserts take of a job's options, in their statements' order."""
    return (o.queue, o.priority, o.run_at, o.delay, o.max_attempts, o.timeout_seconds)


def _by_id(job: NewJob) -> int:
    return job.id


def _claims(claims: Sequence[tuple[int, UUID]]) -> tuple[list[int], list[UUID]]:
    return [job_id for job_id, _ in claims], [token for _, token in claims]


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])


@dataclass(slots=True)
class _ClaimPlan:
    names: list[str] = field(default_factory=list)
    caps: list[int] = field(default_factory=list)
    max_running: list[int | None] = field(default_factory=list)
    rate_wait: float | None = None


def _claim_plan(
    queues: Sequence[str], limited: dict[str, asyncpg.Record], limit: int
) -> _ClaimPlan:
    """How many jobs each served queue may give now: paused none, rate-limited its tokens."""
    plan = _ClaimPlan()
    for name in queues:
        row = limited.get(name)
        cap = limit
        if row is not None:
            if row["paused"]:
                continue
            if row["rate_limit"] is not None:
                tokens = float(row["tokens_now"])
                if tokens < 1:
                    wait = (1 - tokens) / row["rate_limit"]
                    plan.rate_wait = min(plan.rate_wait or wait, wait)
                    continue
                cap = min(cap, int(tokens))
        plan.names.append(name)
        plan.caps.append(cap)
        plan.max_running.append(row["concurrency_limit"] if row is not None else None)
    return plan


async def _spend_tokens(
    conn: Any,
    limited: dict[str, asyncpg.Record],
    claimed: list[asyncpg.Record],
    rate_wait: float | None,
) -> float | None:
    """Take the claimed jobs' tokens from rate-limited queues; returns the next-token wait."""
    used: dict[str, int] = {}
    for row in claimed:
        used[row["queue"]] = used.get(row["queue"], 0) + 1
    names, tokens, ats = [], [], []
    for name, row in limited.items():
        if row["rate_limit"] is None or row["paused"]:
            continue
        left = float(row["tokens_now"]) - used.get(name, 0)
        names.append(name)
        tokens.append(left)
        ats.append(row["at"])
        if left < 1:
            wait = (1 - left) / row["rate_limit"]
            rate_wait = min(rate_wait or wait, wait)
    if names:
        await conn.execute(q("queue_tokens_spend"), names, tokens, ats)
    return rate_wait


def _claimed(rows: list[asyncpg.Record], token: UUID) -> list[ClaimedJob]:
    # Rows come in start order (the query sorts them), fields in ClaimedJob's order.
    return [ClaimedJob(r[0], r[1], r[2], r[3], r[4], r[5], r[6], token) for r in rows]


class JobStore:
    """The narrow seam between JQS and PostgreSQL for jobs."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._limited: tuple[float, frozenset[str]] = (0.0, frozenset())

    async def insert(
        self, payload: RawJSON, options: EnqueueOptions | None = None
    ) -> tuple[Job, InsertOutcome]:
        """Insert one queued job, committed on return.

        With an idempotency key that exists already, nothing is inserted: the existing job
        comes back as DUPLICATE (same request digest) or CONFLICT (another request).
        """
        opts = options or EnqueueOptions()
        args = (
            payload,
            opts.queue,
            opts.priority,
            opts.run_at,
            opts.delay,
            opts.max_attempts,
            opts.timeout_seconds,
            opts.idempotency_key,
            opts.request_digest,
        )
        with wrap_errors():
            # Twice at most: the job holding the key may be deleted between the two reads.
            for _ in range(2):
                row = await self._pool.fetchrow(q("job_insert"), *args)
                if row is not None:
                    return _job(row), InsertOutcome.CREATED
                existing = await self._pool.fetchrow(
                    q("job_get_by_idempotency_key"), opts.idempotency_key
                )
                if existing is not None:
                    same = existing["request_digest"] == opts.request_digest
                    outcome = InsertOutcome.DUPLICATE if same else InsertOutcome.CONFLICT
                    return _job(existing), outcome
        raise RuntimeError("idempotency key neither inserted nor found")  # pragma: no cover

    async def insert_many(self, jobs: Sequence[tuple[RawJSON, EnqueueOptions]]) -> list[NewJob]:
        """Insert a batch in one statement (all or none); results come back in input order."""
        if not jobs:
            return []
        options = shared_options(jobs)
        if options is not None:
            alike = await self.insert_alike([payload for payload, _ in jobs], options)
            created_at, run_at = alike.created_at, alike.run_at
            return [
                NewJob(job_id, task, created_at, run_at)
                for job_id, task in zip(alike.ids, alike.tasks, strict=True)
            ]
        rows = RawJSON(
            orjson.dumps(
                [
                    # orjson wants bytes exactly
                    (orjson.Fragment(bytes(payload)), *_option_values(o))
                    for payload, o in jobs
                ]
            )
        )
        with wrap_errors():
            inserted = await self._pool.fetch(q("job_insert_many"), rows)
        new = [NewJob(r[0], r[1], r[2], r[3]) for r in inserted]
        new.sort(key=_by_id)
        return new

    async def insert_alike(self, payloads: Sequence[RawJSON], o: EnqueueOptions) -> NewJobs:
        """Insert jobs that share their options in one statement (all or none)."""
        if not payloads:
            raise ValueError("no jobs to insert")
        with wrap_errors():
            row = await self._pool.fetchrow(
                q("job_insert_many_alike"),
                RawJSON(b"[" + b",".join(payloads) + b"]"),
                *_option_values(o),
            )
        assert row is not None  # an aggregate always gives one row
        return NewJobs(row["ids"], row["tasks"], row["created_at"], row["run_at"])

    async def get(self, job_id: int) -> Job:
        """The job with this id, or JobNotFound."""
        if not 0 < job_id <= MAX_JOB_ID:
            raise JobNotFound(job_id)
        with wrap_errors():
            row = await self._pool.fetchrow(q("job_get"), job_id)
        if row is None:
            raise JobNotFound(job_id)
        return _job(row)

    async def find(self, job_filter: JobFilter, *, limit: int, offset: int) -> list[Job]:
        """Jobs newest first (highest id first), narrowed by the filter."""
        status = job_filter.status.value if job_filter.status else None
        task = job_filter.task
        with wrap_errors():
            # Which index serves a listing depends on the values: a few failed jobs among a
            # million completed, or one task's. Measured on 1.2 million rows, the generic
            # plan of a task's listing took 335 ms, the custom one 1.5 ms.
            async with planned_freely(self._pool) as conn:
                if task is not None and status is None:
                    rows = await conn.fetch(q("job_list_by_task"), task, limit, offset)
                else:
                    rows = await conn.fetch(q("job_list"), status, task, limit, offset)
        return [_job(row) for row in rows]

    async def claim(
        self,
        queues: Sequence[str],
        *,
        limit: int,
        lease_seconds: float,
        worker_id: str,
        now: datetime | None = None,
    ) -> ClaimResult:
        """Move up to `limit` runnable jobs of `queues` to processing under fresh leases.

        Paused queues give nothing; limited ones give no more than their concurrency limit
        and rate allow, across every process (their settings rows are locked meanwhile).
        `now` replaces the database clock for `run_at` (tests).
        """
        limited = await self._limited_queues()
        plain = [name for name in queues if name not in limited]
        guarded = [name for name in queues if name in limited]
        result = ClaimResult([])
        if guarded:
            result = await self._claim_limited(guarded, limit, lease_seconds, worker_id, now)
        room = limit - len(result.jobs)
        if plain and room > 0:
            # One statement, no transaction: the common case of queues without limits.
            with wrap_errors():
                rows = await self._pool.fetch(
                    q("job_claim"),
                    plain,
                    [room] * len(plain),
                    [None] * len(plain),
                    room,
                    lease_seconds,
                    worker_id,
                    now,
                    True,
                    token := uuid.uuid4(),
                )
            result = ClaimResult(result.jobs + _claimed(rows, token), result.rate_wait)
        return replace(result, limited=bool(guarded))

    async def _limited_queues(self) -> frozenset[str]:
        """Names of limited or paused queues, re-read at most every LIMITS_CACHE_SECONDS.

        A stale answer costs nothing in correctness: the fast path re-checks in SQL.
        """
        loop_time = asyncio.get_running_loop().time()
        expires, names = self._limited
        if loop_time >= expires:
            with wrap_errors():
                rows = await self._pool.fetch(q("queue_limited_names"))
            names = frozenset(row["name"] for row in rows)
            self._limited = (loop_time + LIMITS_CACHE_SECONDS, names)
        return names

    async def _claim_limited(
        self,
        queues: Sequence[str],
        limit: int,
        lease_seconds: float,
        worker_id: str,
        now: datetime | None,
    ) -> ClaimResult:
        with wrap_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                limited = {
                    row["name"]: row
                    for row in await conn.fetch(q("queue_lock_limited"), list(queues))
                }
                plan = _claim_plan(queues, limited, limit)
                if not plan.names:
                    return ClaimResult([], plan.rate_wait)
                rows = await conn.fetch(
                    q("job_claim"),
                    plan.names,
                    plan.caps,
                    plan.max_running,
                    limit,
                    lease_seconds,
                    worker_id,
                    now,
                    False,
                    token := uuid.uuid4(),
                )
                rate_wait = await _spend_tokens(conn, limited, rows, plan.rate_wait)
        return ClaimResult(_claimed(rows, token), rate_wait)

    async def complete(self, job_id: int, lease_token: UUID, result: RawJSON) -> bool:
        """Finish an attempt as completed; False when the lease was no longer ours."""
        with wrap_errors():
            status = await self._pool.execute(q("job_complete"), job_id, lease_token, result)
        return _count(status) == 1

    async def complete_many(self, outcomes: Sequence[tuple[int, UUID, RawJSON]]) -> list[bool]:
        """Finish many attempts as completed in one statement; per item, whether it applied."""
        if not outcomes:
            return []
        ids = [job_id for job_id, _, _ in outcomes]
        tokens = [token for _, token, _ in outcomes]
        results = [result for _, _, result in outcomes]
        with wrap_errors():
            rows = await self._pool.fetch(q("job_complete_many"), ids, tokens, results)
        applied = {row["id"] for row in rows}
        return [job_id in applied for job_id in ids]

    async def fail_attempt(
        self,
        job_id: int,
        lease_token: UUID,
        error: RawJSON,
        *,
        retry: bool,
        retry_in: float = 0.0,
    ) -> tuple[JobStatus, datetime] | None:
        """Record a failed attempt: queued again in `retry_in` seconds while attempts remain
        (and `retry`), else failed. Returns (new status, run_at), or None if the lease was lost.
        """
        with wrap_errors():
            row = await self._pool.fetchrow(
                q("job_fail_attempt"), job_id, lease_token, error, retry, retry_in
            )
        return None if row is None else (JobStatus(row["status"]), row["run_at"])

    async def finish_cancelled(self, job_id: int, lease_token: UUID, result: RawJSON) -> bool:
        """End a running job as cancelled (its worker's side); False when the lease was lost."""
        with wrap_errors():
            status = await self._pool.execute(q("job_cancel_finish"), job_id, lease_token, result)
        return _count(status) == 1

    async def cancel(self, job_id: int, result: RawJSON) -> tuple[Job, bool]:
        """Cancel a queued job now, or ask the worker of a running one to stop it.

        Returns the job and whether anything changed (False: it had finished already).
        Raises JobNotFound.
        """
        return await self._change("job_cancel", job_id, result)

    async def retry(self, job_id: int) -> tuple[Job, bool]:
        """Queue a failed or cancelled job again with fresh attempts.

        Returns the job and whether anything changed (False: it was in another status).
        Raises JobNotFound.
        """
        return await self._change("job_retry", job_id)

    async def _change(self, query: str, job_id: int, *args: object) -> tuple[Job, bool]:
        if not 0 < job_id <= MAX_JOB_ID:
            raise JobNotFound(job_id)
        with wrap_errors():
            row = await self._pool.fetchrow(q(query), job_id, *args)
        if row is None:
            return await self.get(job_id), False
        return _job(row), True

    async def heartbeat(
        self, claims: Sequence[tuple[int, UUID]], lease_seconds: float
    ) -> dict[int, bool]:
        """Extend the leases still held: {job id: cancellation asked}. Missing ids were lost."""
        if not claims:
            return {}
        ids, tokens = _claims(claims)
        with wrap_errors():
            rows = await self._pool.fetch(q("job_heartbeat_many"), ids, tokens, lease_seconds)
        return {row["id"]: row["cancel_requested"] for row in rows}

    async def cancel_requested(self, claims: Sequence[tuple[int, UUID]]) -> set[int]:
        """Which of these running jobs someone asked to cancel."""
        if not claims:
            return set()
        ids, tokens = _claims(claims)
        with wrap_errors():
            rows = await self._pool.fetch(q("job_cancel_requested_many"), ids, tokens)
        return {row["id"] for row in rows}

    async def rescue_expired(self, limit: int = 500) -> list[RescuedJob]:
        """Return jobs with expired leases to the queue (or end them); one process at a time."""
        with wrap_errors():
            rows = await self._pool.fetch(q("job_rescue_expired"), limit, RESCUER_LOCK_KEY)
        return [
            RescuedJob(
                id=row["id"],
                task=row["task"],
                queue=row["queue"],
                attempt=row["attempts"],
                status=JobStatus(row["status"]),
                worker=row["worker"],
            )
            for row in rows
        ]

    async def release(self, claims: Sequence[tuple[int, UUID]]) -> int:
        """Hand claimed jobs back to the queue without counting the attempt."""
        if not claims:
            return 0
        ids, tokens = _claims(claims)
        with wrap_errors():
            status = await self._pool.execute(q("job_release"), ids, tokens)
        return _count(status)

    async def prune(self, older_than: float, limit: int = 1000) -> int:
        """Delete up to `limit` jobs finished more than `older_than` seconds ago.

        One process at a time: the others delete nothing (0) while one is at it.
        """
        with wrap_errors():
            status = await self._pool.execute(q("job_prune"), older_than, limit, PRUNER_LOCK_KEY)
        return _count(status)

    async def count_by_status(self) -> dict[JobStatus, int]:
        """How many jobs are in each status (zero for none)."""
        with wrap_errors():
            async with planned_freely(self._pool) as conn:  # a count reads every row
                rows = await conn.fetch(q("job_count_by_status"))
        counts = dict.fromkeys(JobStatus, 0)
        counts.update({JobStatus(row["status"]): row["n"] for row in rows})
        return counts

    async def ping(self) -> None:
        """Round-trip to the database; raises DatabaseUnavailable when it is gone."""
        with wrap_errors():
            await self._pool.fetchval(q("db_ping"))
