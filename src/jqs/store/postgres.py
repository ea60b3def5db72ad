"""PostgresStore: the storage port on PostgreSQL, one named query per operation."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from jqs.errors import JobNotFound
from jqs.jsonutil import RawJSON
from jqs.models import (
    ApiKey,
    ClaimedJob,
    ClaimResult,
    DeliveryAttempt,
    DeliveryState,
    DueDelivery,
    EnqueueOptions,
    EventCursor,
    EventPage,
    EventType,
    HeldJob,
    IdempotencyKey,
    Inserted,
    InsertedAlike,
    InsertOutcome,
    Job,
    JobEvent,
    JobStatus,
    JobText,
    Lease,
    LeaseCheck,
    NewJob,
    Progress,
    QueueActivity,
    QueueDepth,
    QueueInfo,
    QueueRemoval,
    QueueSettings,
    RescuedJob,
    Throughput,
    Webhook,
    WebhookDelivery,
    WorkerInfo,
    message_id,
    shared_options,
)
from jqs.outcome import Completed, Failed, Final, Retry
from jqs.port import (
    MAX_JOB_ID,
    WORKER_SILENCE_SECONDS,
    ActiveKey,
    Change,
    ClaimParams,
    DeliveryClaim,
    DeliveryListing,
    DeliveryOutcome,
    EndedRead,
    EventRead,
    FindParams,
    Finish,
    JobEventsRead,
    JobSearch,
    LeaseCheckParams,
    Moved,
    NewKey,
    NewWebhook,
    PruneParams,
    QueuePatch,
    RescueParams,
    ScheduleFire,
    SearchCount,
    SearchParams,
    SecretRotation,
    ThroughputRead,
    WorkerBeat,
)
from jqs.store.db import Db
from jqs.store.limits import LimitedQueue, plan_claim, spend_tokens
from jqs.store.listing import INLINE_BYTES, Sized, steps

# Constants every JQS process agrees on: advisory locks of the one-at-a-time maintenance.
RESCUER_LOCK_KEY = 0x4A51_5300_0002
PRUNER_LOCK_KEY = 0x4A51_5300_0003
# How long a process trusts its list of limited queues (a stale list is still safe: the
# fast path re-checks in SQL).
LIMITS_CACHE_SECONDS = 1.0

# Columns named as the job's fields; `cancel_requested` is derived from its timestamp, and
# `waiting_for_worker` is the API's to say.
_JOB_COLUMNS = tuple(
    f.name
    for f in fields(Job)
    if f.name not in ("status", "cancel_requested", "waiting_for_worker")
)


def job_from_row(row: asyncpg.Record) -> Job:
    """A row of `jobs` as the job's shape."""
    return Job(
        **{name: row[name] for name in _JOB_COLUMNS},
        status=JobStatus(row["status"]),
        cancel_requested=row["cancel_requested_at"] is not None,
    )


def _text_from_row(row: asyncpg.Record) -> JobText:
    """A row of job_list (JSON as text) or job_get_many (JSON as UTF-8 bytes)."""
    payload, result, errors = row["payload"], row["result"], row["errors"]
    progress = row["progress"]
    if type(payload) is str:
        payload, errors = payload.encode(), errors.encode()
        result = None if result is None else result.encode()
    if type(progress) is str:
        progress = progress.encode()
    return JobText(
        id=row["id"],
        payload=payload,
        status=JobStatus(row["status"]),
        result=b"null" if result is None else result,
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
        timeout=row["timeout"],
        cancel_requested=row["cancel_requested_at"] is not None,
        created_by=row["created_by"],
        errors=errors,
        progress=b"null" if progress is None else progress,
    )


def _claimed(row: asyncpg.Record, token: uuid.UUID) -> ClaimedJob:
    # Positional (a tuple is built fastest so), each value read by its column's name.
    return ClaimedJob(
        row["id"],
        row["payload"],
        row["task"],
        row["queue"],
        row["attempt"],
        row["max_attempts"],
        row["timeout"],
        Lease(row["id"], token),
        row["waited"],
        row["trace_context"],
        row["lease_expires_at"],
    )


def _option_values(o: EnqueueOptions) -> tuple[object, ...]:
    """A job's options in job_insert_many's row order."""
    return (o.queue, o.priority, o.run_at, o.delay, o.max_attempts, o.timeout)


def _end(outcome: Final) -> tuple[str, RawJSON | None, RawJSON | None, float | None]:
    """One end's status, result, error and retry delay, as job_finish_many takes them."""
    if isinstance(outcome, Completed):
        return JobStatus.COMPLETED, outcome.result, None, None
    if isinstance(outcome, Retry):
        return JobStatus.QUEUED, None, outcome.error.json, outcome.delay
    if isinstance(outcome, Failed):
        return JobStatus.FAILED, outcome.error.json, outcome.error.json, None
    return JobStatus.CANCELLED, outcome.result, None, None


def _ends(finishes: Sequence[Finish]) -> dict[str, list[Any]]:
    """job_finish_many's parallel arrays, one element per job."""
    statuses, results, errors, retry_in = zip(*(_end(f.outcome) for f in finishes), strict=True)
    return {
        **_lease_arrays([finish.lease for finish in finishes]),
        "statuses": list(statuses),
        "results": list(results),
        "errors": list(errors),
        "retry_in": list(retry_in),
    }


def _lease_arrays(leases: Sequence[Lease]) -> dict[str, list[Any]]:
    return {"ids": [lease.job_id for lease in leases], "tokens": [lease.token for lease in leases]}


def _event(row: asyncpg.Record) -> JobEvent:
    return JobEvent(
        id=row["id"],
        job_id=row["job_id"],
        type=EventType(row["type"]),
        at=row["at"],
        data=row["data"],
        queue=row.get("queue"),
        task=row.get("task"),
        xid=row["xid"],
    )


def _search_values(search: JobSearch) -> dict[str, object]:
    return {
        "status": None if search.status is None else search.status.value,
        "queue": search.queue,
        "task": search.task,
        "contains": search.contains,
        "since": search.since,
        "until": search.until,
        "queues": None if search.queues is None else sorted(search.queues),
        "tasks": None if search.tasks is None else sorted(search.tasks),
    }


def _no_one() -> None:
    pass


def _no_ends(_: Sequence[int]) -> None:
    pass


class PostgresStore:
    """Every operation of the storage port (jqs.port.Store) on PostgreSQL.

    `on_events` is called after each statement that may have added events to the log, once
    it has committed (the composition root wakes this process's readers with it, and tells
    other processes); it must be quick and must not raise. `on_ended` is called next with
    the jobs whose final event that statement wrote (attempts' ends, cancels, rescues), as
    quick: waiting for one of them needs no reading of the log.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        on_events: Callable[[], None] = _no_one,
        on_ended: Callable[[Sequence[int]], None] = _no_ends,
    ) -> None:
        self._db = Db(pool)
        self._limited: tuple[float, frozenset[str]] = (float("-inf"), frozenset())
        self.on_events = on_events
        self.on_ended = on_ended

    # Jobs

    async def insert(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        """Insert jobs in one statement (all or none); results in input order."""
        if not jobs:
            return []
        options = shared_options([job.options for job in jobs])
        first = jobs[0]
        if options is not None and all(
            job.created_by == first.created_by and job.trace_context == first.trace_context
            for job in jobs
        ):
            alike = await self.insert_alike(
                [job.payload for job in jobs], options, first.created_by, first.trace_context
            )
            return [
                Inserted(job_id, task, alike.created_at, alike.run_at)
                for job_id, task in zip(alike.ids, alike.tasks, strict=True)
            ]
        # orjson wants bytes exactly, not a subclass
        rows = [
            (
                orjson.Fragment(bytes(j.payload)),
                *_option_values(j.options),
                j.created_by,
                j.trace_context,
                j.options.callback_url,
            )
            for j in jobs
        ]
        inserted = await self._db.fetch(
            "job_insert_many",
            rows=RawJSON(orjson.dumps(rows)),
            any_callback=any(j.options.callback_url is not None for j in jobs),
        )
        self.on_events()
        return sorted((Inserted(**row) for row in inserted), key=lambda new: new.id)

    async def insert_alike(
        self,
        payloads: Sequence[RawJSON],
        options: EnqueueOptions,
        created_by: str | None = None,
        trace_context: str | None = None,
    ) -> InsertedAlike:
        """Insert jobs that share their options in one statement (all or none)."""
        if not payloads:
            raise ValueError("no jobs to insert")
        row = await self._db.fetchrow(
            "job_insert_many_alike",
            options,
            payloads=RawJSON(b"[" + b",".join(payloads) + b"]"),
            created_by=created_by,
            trace_context=trace_context,
        )
        assert row is not None  # an aggregate always gives one row
        self.on_events()
        return InsertedAlike(**row)

    async def insert_once(self, job: NewJob, key: IdempotencyKey) -> tuple[Job, InsertOutcome]:
        """Insert unless the key exists; then the job holding it, DUPLICATE or CONFLICT."""
        # Twice at most: the job holding the key may be deleted between the two reads.
        for _ in range(2):
            row = await self._db.fetchrow(
                "job_insert_once",
                job.options,
                payload=job.payload,
                key=key.key,
                digest=key.request_digest,
                created_by=job.created_by,
                trace_context=job.trace_context,
            )
            if row is not None:
                self.on_events()
                return job_from_row(row), InsertOutcome.CREATED
            existing = await self._db.fetchrow("job_get_by_idempotency_key", key=key.key)
            if existing is not None:
                same = existing["request_digest"] == key.request_digest
                return job_from_row(existing), (
                    InsertOutcome.DUPLICATE if same else InsertOutcome.CONFLICT
                )
        raise RuntimeError("idempotency key neither inserted nor found")  # pragma: no cover

    async def get(self, job_id: int) -> Job:
        """The job with this id, or JobNotFound."""
        if not 0 < job_id <= MAX_JOB_ID:
            raise JobNotFound(job_id)
        row = await self._db.fetchrow("job_get", id=job_id)
        if row is None:
            raise JobNotFound(job_id)
        return job_from_row(row)

    async def get_many(self, job_ids: Sequence[int]) -> list[Job]:
        """The jobs with these ids, in one statement; those that do not exist are left out."""
        ids = sorted({job_id for job_id in job_ids if 0 < job_id <= MAX_JOB_ID})
        if not ids:
            return []
        return [job_from_row(row) for row in await self._db.fetch("job_get_each", ids=ids)]

    async def find(self, params: FindParams) -> list[Job]:
        """A page of jobs, newest first."""
        return [job.job() async for chunk in self.find_text(params) for job in chunk]

    async def find_text(self, params: FindParams) -> AsyncIterator[list[JobText]]:
        """A page of jobs in chunks of bounded size, their JSON as text (jqs.store.listing)."""
        wanted = params.filter
        status, task = wanted.status, wanted.task
        queues = None if wanted.queues is None else sorted(wanted.queues)
        if task is not None and status is None:
            rows = await self._db.fetch(
                "job_list_by_task", params, task=task, queues=queues, inline_bytes=INLINE_BYTES
            )
        else:
            tasks = None if wanted.tasks is None else sorted(wanted.tasks)
            rows = await self._db.fetch(
                "job_list",
                params,
                status=status,
                task=task,
                queues=queues,
                tasks=tasks,
                inline_bytes=INLINE_BYTES,
            )
        page = [Sized(row["inline"], row["size"], row["packed"]) for row in rows]
        for step in steps(page):
            if not step.read:
                yield [_text_from_row(rows[position]) for position in step.positions]
                continue
            read = await self._db.fetch(
                "job_get_many", ids=[rows[position]["id"] for position in step.positions]
            )
            if read:
                yield [_text_from_row(row) for row in read]
            del read  # not held while the next chunk is read

    async def cancel(self, job_id: int, result: RawJSON) -> Change:
        """Cancel a queued job now, or ask the worker of a running one to stop it."""
        return await self._change("job_cancel", job_id, result=result)

    async def retry(self, job_id: int) -> Change:
        """Queue a failed or cancelled job again with fresh attempts."""
        return await self._change("job_retry", job_id)

    async def _change(self, query: str, job_id: int, **values: object) -> Change:
        if not 0 < job_id <= MAX_JOB_ID:
            raise JobNotFound(job_id)
        row = await self._db.fetchrow(query, id=job_id, **values)
        if row is None:
            return Change(await self.get(job_id), changed=False)
        job = job_from_row(row)
        self.on_events()
        if job.status.finished:
            self.on_ended([job.id])
        return Change(job, changed=True)

    async def ping(self) -> None:
        """Raise DatabaseUnavailable unless PostgreSQL answers."""
        await self._db.fetchval("db_ping")

    # The worker's side

    async def claim(self, params: ClaimParams) -> ClaimResult:
        """Move runnable jobs to processing under a fresh lease, within the queues' limits.

        Queues without limits take one statement outside any transaction; paused, limited
        and rate-limited ones are claimed in a transaction holding their settings rows.
        """
        limited = await self._limited_queues()
        plain = [name for name in params.queues if name not in limited]
        guarded = [name for name in params.queues if name in limited]
        result = ClaimResult([])
        if guarded:
            result = await self._claim_limited(params, guarded)
        room = params.limit - len(result.jobs)
        if plain and room > 0:
            token = uuid.uuid4()
            rows = await self._db.fetch(
                "job_claim",
                params,
                queues=plain,
                caps=[room] * len(plain),
                max_running=[None] * len(plain),
                limit=room,
                skip_limited=True,
                token=token,
            )
            jobs = [_claimed(row, token) for row in rows]
            result = ClaimResult(result.jobs + jobs, result.rate_wait)
        if result.jobs:
            self.on_events()
        return ClaimResult(result.jobs, result.rate_wait, limited=bool(guarded))

    async def _limited_queues(self) -> frozenset[str]:
        """Names of limited or paused queues, re-read at most every LIMITS_CACHE_SECONDS."""
        now = asyncio.get_running_loop().time()
        expires, names = self._limited
        if now >= expires:
            rows = await self._db.fetch("queue_limited_names")
            names = frozenset(row["name"] for row in rows)
            self._limited = (now + LIMITS_CACHE_SECONDS, names)
        return names

    async def _claim_limited(self, params: ClaimParams, queues: list[str]) -> ClaimResult:
        async with self._db.transaction() as tx:
            rows = await tx.fetch("queue_lock_limited", names=queues)
            at: datetime = rows[0]["at"] if rows else datetime.now(UTC)
            limited = {
                row["name"]: LimitedQueue(**{k: v for k, v in row.items() if k != "at"})
                for row in rows
            }
            plan = plan_claim(queues, limited, params.limit, at)
            if not plan.names:
                return ClaimResult([], plan.rate_wait)
            token = uuid.uuid4()
            claimed = await tx.fetch(
                "job_claim",
                params,
                queues=plan.names,
                caps=plan.caps,
                max_running=plan.max_running,
                skip_limited=False,
                token=token,
            )
            jobs = [_claimed(row, token) for row in claimed]
            spent = spend_tokens(limited, Counter(job.queue for job in jobs), plan, at)
            if spent:
                await tx.execute(
                    "queue_tokens_spend",
                    names=[s.name for s in spent],
                    tokens=[s.tokens for s in spent],
                    ats=[s.at for s in spent],
                )
        return ClaimResult(jobs, plan.rate_wait)

    async def check_leases(self, params: LeaseCheckParams) -> LeaseCheck:
        """Which leases are lost and which jobs were asked to cancel; extends the rest."""
        if not params.leases:
            return LeaseCheck(frozenset(), frozenset())
        arrays = _lease_arrays(params.leases)
        if params.extend_by is None:
            rows = await self._db.fetch("job_leases_read", **arrays)
        else:
            rows = await self._db.fetch("job_leases_extend", seconds=params.extend_by, **arrays)
            extended = {row["id"] for row in rows}
            skipped = [lease for lease in params.leases if lease.job_id not in extended]
            if skipped:  # locked by another statement just then, or lost: which?
                rows += await self._db.fetch("job_leases_read", **_lease_arrays(skipped))
        held = {row["id"] for row in rows}
        return LeaseCheck(
            lost=frozenset(lease.job_id for lease in params.leases) - held,
            cancel_requested=frozenset(row["id"] for row in rows if row["cancel_requested"]),
            expires_at={}
            if params.extend_by is None
            else {row["id"]: row["lease_expires_at"] for row in rows},
        )

    async def held(self, leases: Sequence[Lease]) -> list[HeldJob]:
        """The running attempts these leases still hold (the others are left out)."""
        if not leases:
            return []
        rows = await self._db.fetch("job_leases_held", **_lease_arrays(leases))
        return [HeldJob(**row) for row in rows]

    async def finish(self, finishes: Sequence[Finish]) -> list[bool]:
        """Write attempts' ends in one statement, each only if its lease holds."""
        # The statement takes one end per job: ends for a job named twice (a stale worker's
        # and the current one's) go in statements of their own, one after the other.
        rounds: list[list[int]] = []  # indexes into `finishes`
        seen: Counter[int] = Counter()
        for index, finish in enumerate(finishes):
            turn = seen[finish.lease.job_id]
            seen[finish.lease.job_id] += 1
            if turn == len(rounds):
                rounds.append([])
            rounds[turn].append(index)
        written = [False] * len(finishes)
        for indexes in rounds:
            batch = [finishes[i] for i in indexes]
            rows = await self._db.fetch("job_finish_many", **_ends(batch))
            done = {row["id"] for row in rows}
            for i in indexes:
                written[i] = finishes[i].lease.job_id in done
        if any(written):
            self.on_events()
            self.on_ended(
                [
                    finish.lease.job_id
                    for finish, ok in zip(finishes, written, strict=True)
                    if ok and not isinstance(finish.outcome, Retry)
                ]
            )
        return written

    async def release(self, leases: Sequence[Lease]) -> int:
        """Hand running jobs back to the queue, the attempt not counted."""
        if not leases:
            return 0
        released: int = await self._db.fetchval("job_release", **_lease_arrays(leases))
        if released:
            self.on_events()
        return released

    async def progress(self, lease: Lease, report: Progress) -> bool:
        """Record the running attempt's progress (and its event) if its lease holds."""
        written: int = await self._db.fetchval(
            "job_progress", id=lease.job_id, token=lease.token, progress=report.json()
        )
        if written:
            self.on_events()
        return bool(written)

    async def worker_beat(self, beat: WorkerBeat) -> None:
        """Record that a worker is alive."""
        await self._db.execute("worker_beat", beat, queues=list(beat.queues))

    async def worker_gone(self, worker_id: str) -> None:
        """Forget a worker that stopped."""
        await self._db.execute("worker_gone", id=worker_id)

    # Maintenance

    async def rescue(self, params: RescueParams) -> list[RescuedJob]:
        """Expired leases back to the queue (or ended); one process at a time."""
        rows = await self._db.fetch("job_rescue_expired", params, lock=RESCUER_LOCK_KEY)
        rescued = [
            RescuedJob(
                id=row["id"],
                task=row["task"],
                queue=row["queue"],
                attempt=row["attempt"],
                status=JobStatus(row["status"]),
                worker=row["worker"],
            )
            for row in rows
        ]
        if rescued:
            self.on_events()
            self.on_ended([job.id for job in rescued if job.status.finished])
        return rescued

    async def prune(self, params: PruneParams) -> int:
        """Delete old finished jobs; 0 while another process is at it."""
        deleted: int = await self._db.fetchval("job_prune", params, lock=PRUNER_LOCK_KEY)
        return deleted

    async def schedule_register(self, name: str, expression: str, start_after: datetime) -> None:
        """Make a schedule known; a new or changed one first fires after `start_after`."""
        await self._db.execute(
            "cron_schedule_register", name=name, expression=expression, start_after=start_after
        )

    async def schedule_fire(self, params: ScheduleFire) -> int | None:
        """The new job's id, or None when that time was enqueued already."""
        job_id: int | None = await self._db.fetchval(
            "cron_fire",
            params.job.options,
            name=params.name,
            at=params.at,
            payload=params.job.payload,
            key=f"cron:{params.name}:{params.at.isoformat()}",
        )
        if job_id is not None:
            self.on_events()
        return job_id

    async def workers_forget(self, silent_for: float) -> int:
        """Forget workers not heard from for `silent_for` seconds."""
        forgotten: int = await self._db.fetchval("worker_forget", silent_for=silent_for)
        return forgotten

    # Queues and workers, as operators see them

    async def queue_update(self, patch: QueuePatch) -> QueueSettings:
        """Change what the patch gives; the rest stays as it was."""
        row = await self._db.fetchrow(
            "queue_upsert",
            patch,
            set_limit="concurrency_limit" in patch.given,
            set_rate="rate_limit" in patch.given,
            set_paused="paused" in patch.given,
            set_max_queued="max_queued" in patch.given,
        )
        assert row is not None
        self._limited = (float("-inf"), frozenset())  # this process sees the change at once
        return QueueSettings(**row)

    async def queue_delete(self, name: str) -> QueueRemoval:
        """Remove a queue's settings, unless it has queued or running jobs."""
        row = await self._db.fetchrow("queue_delete", name=name)
        assert row is not None
        self._limited = (float("-inf"), frozenset())  # its limits end here at once
        return QueueRemoval(name, found=row["found"], unfinished=row["unfinished"])

    async def queue_depths(self) -> list[QueueDepth]:
        """The queues with a `max_queued`, each with its queued jobs counted up to it."""
        return [QueueDepth(**row) for row in await self._db.fetch("queue_depths")]

    async def queue_activity(self) -> list[QueueActivity]:
        """The queues that have queued or running jobs, by name."""
        found: dict[str, QueueActivity] = {}
        for row in await self._db.fetch("queue_activity"):
            known = found.get(row["queue"], QueueActivity(row["queue"]))
            found[row["queue"]] = QueueActivity(
                known.name,
                known.queued + row["queued"],
                known.running + row["running"],
                known.oldest_wait_seconds if row["oldest_wait"] is None else row["oldest_wait"],
            )
        return [found[name] for name in sorted(found)]

    async def queue_infos(self) -> list[QueueInfo]:
        """Every queue that has jobs, settings or live workers, by name."""
        settings = {
            row["name"]: QueueSettings(**row) for row in await self._db.fetch("queue_settings")
        }
        counts: dict[str, dict[JobStatus, int]] = {}
        oldest: dict[str, float] = {}
        for row in await self._db.fetch("queue_counts"):
            counts.setdefault(row["queue"], dict.fromkeys(JobStatus, 0))[
                JobStatus(row["status"])
            ] = row["n"]
            if row["status"] == JobStatus.QUEUED and row["oldest_wait"] is not None:
                oldest[row["queue"]] = float(row["oldest_wait"])
        serving: dict[str, list[str]] = {}
        for worker in await self.workers():
            for name in worker.queues:
                serving.setdefault(name, []).append(worker.id)
        return [
            QueueInfo(
                settings=settings.get(name, QueueSettings(name)),
                counts=counts.get(name, dict.fromkeys(JobStatus, 0)),
                oldest_queued_seconds=oldest.get(name),
                workers=serving.get(name, []),
            )
            for name in sorted(settings.keys() | counts.keys() | serving.keys())
        ]

    async def workers(self) -> list[WorkerInfo]:
        """The live workers, by id."""
        rows = await self._db.fetch("worker_list", silent_for=WORKER_SILENCE_SECONDS)
        return [WorkerInfo(**row) for row in rows]

    # Dashboard

    async def job_search(self, params: SearchParams) -> list[Job]:
        """The matching jobs of the window, newest first."""
        rows = await self._db.fetch("job_search", params, **_search_values(params.search))
        return [job_from_row(row) for row in rows]

    async def job_search_count(self, params: SearchParams) -> SearchCount:
        """How many jobs of the window match."""
        row = await self._db.fetchrow("job_search_count", params, **_search_values(params.search))
        assert row is not None  # scalar subqueries always give one row
        return SearchCount(matching=row["matching"], oldest_at=row["oldest_at"])

    async def job_newest_id(self) -> int:
        """The highest job id (0 when there is no job)."""
        newest: int = await self._db.fetchval("job_newest_id")
        return newest

    async def cancel_many(self, job_ids: Sequence[int], result: RawJSON) -> list[Moved]:
        """`cancel` for each job in one statement; the jobs it changed."""
        ids = [job_id for job_id in job_ids if 0 < job_id <= MAX_JOB_ID]
        rows = await self._db.fetch("job_cancel_many", ids=ids, result=result)
        if rows:
            self.on_events()
            self.on_ended([row["id"] for row in rows if row["ended"]])
        return [Moved(row["id"], row["queue"]) for row in rows]

    async def retry_many(self, job_ids: Sequence[int]) -> list[Moved]:
        """`retry` for each job in one statement; the jobs it queued again."""
        ids = [job_id for job_id in job_ids if 0 < job_id <= MAX_JOB_ID]
        rows = await self._db.fetch("job_retry_many", ids=ids)
        if rows:
            self.on_events()
        return [Moved(row["id"], row["queue"]) for row in rows]

    async def throughput(self, params: ThroughputRead) -> list[Throughput]:
        """Completed and failed jobs per minute, oldest minute first."""
        return [Throughput(**row) for row in await self._db.fetch("job_throughput", params)]

    async def queue_settings_list(self) -> list[QueueSettings]:
        """Every queue that has settings, by name."""
        rows = await self._db.fetch("queue_settings")
        return sorted((QueueSettings(**row) for row in rows), key=lambda each: each.name)

    # Keys

    async def key_create(self, key: NewKey) -> ApiKey:
        """Store a new key."""
        row = await self._db.fetchrow(
            "key_create",
            key,
            scopes=list(key.scopes),
            queues=None if key.queues is None else list(key.queues),
            tasks=None if key.tasks is None else list(key.tasks),
        )
        assert row is not None
        return ApiKey(**row)

    async def key_list(self) -> list[ApiKey]:
        """Every key, oldest first."""
        return [ApiKey(**row) for row in await self._db.fetch("key_list")]

    async def key_revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key; None when there is none with that id."""
        row = await self._db.fetchrow("key_revoke", id=key_id)
        return None if row is None else ApiKey(**row)

    async def key_list_active(self) -> list[ActiveKey]:
        """The keys usable now, with their hashes."""
        rows = await self._db.fetch("key_list_active")
        return [
            ActiveKey(
                row["secret_hash"], ApiKey(**{k: v for k, v in row.items() if k != "secret_hash"})
            )
            for row in rows
        ]

    # Events

    async def events_of_job(self, params: JobEventsRead) -> list[JobEvent]:
        """One job's events, oldest first."""
        if not 0 < params.job_id <= MAX_JOB_ID:
            return []
        rows = await self._db.fetch("event_list_for_job", params)
        return [_event(row) for row in rows]

    async def events_read(self, params: EventRead) -> EventPage:
        """Every job's events after a position, below the log's horizon."""
        horizon: int = await self._db.fetchval("event_horizon")
        rows = await self._db.fetch(
            "event_read_log",
            xid=str(params.after.xid),
            id=params.after.id,
            horizon=str(horizon),
            limit=params.limit,
        )
        return EventPage(
            events=[_event(row) for row in rows if row["id"] is not None],
            horizon=horizon,
            pending=rows[0]["pending"],
        )

    async def events_ended(self, params: EndedRead) -> list[int]:
        """The jobs among `job_ids` whose end has committed at or above the horizon."""
        if not params.job_ids:
            return []
        rows = await self._db.fetch(
            "event_ended_above", xid=str(params.from_xid), ids=list(params.job_ids)
        )
        return [row["job_id"] for row in rows]

    async def events_now(self) -> EventCursor:
        """A position before every event yet to be written."""
        horizon: int = await self._db.fetchval("event_horizon")
        return EventCursor(horizon, 0)

    # Webhooks

    async def webhook_create(self, hook: NewWebhook) -> Webhook:
        """Store a subscription."""
        row = await self._db.fetchrow(
            "webhook_create",
            hook,
            events=list(hook.events),
            queues=None if hook.queues is None else list(hook.queues),
            tasks=None if hook.tasks is None else list(hook.tasks),
        )
        assert row is not None
        return _webhook(row)

    async def webhook_list(self) -> list[Webhook]:
        """Every subscription, oldest first."""
        return [_webhook(row) for row in await self._db.fetch("webhook_list")]

    async def webhook_delete(self, webhook_id: str) -> bool:
        """Delete a subscription and its deliveries; False when there is none."""
        deleted: int = await self._db.fetchval("webhook_delete", id=webhook_id)
        return deleted > 0

    async def webhook_rotate(self, webhook_id: str, secret: str, overlap: float) -> Webhook | None:
        """Sign with `secret` from now on, and with the old one for `overlap` seconds."""
        row = await self._db.fetchrow(
            "webhook_rotate", id=webhook_id, secret=secret, overlap=overlap
        )
        return None if row is None else _webhook(row)

    async def key_webhook_secret_rotate(
        self, key_id: str, secret: str, overlap: float
    ) -> SecretRotation | None:
        """A key's new webhook secret; None when no key has this id."""
        row = await self._db.fetchrow(
            "key_webhook_secret_rotate", id=key_id, secret=secret, overlap=overlap
        )
        return None if row is None else SecretRotation(row["previous_webhook_until"])

    async def key_has_webhook_secret(self, key_id: str) -> bool:
        """Whether the key exists and has a webhook secret."""
        has: bool | None = await self._db.fetchval("key_has_webhook_secret", id=key_id)
        return bool(has)

    async def webhooks_armed(self) -> bool:
        """Whether a delivery can arise at all."""
        armed: bool = await self._db.fetchval("webhook_armed")
        return armed

    async def deliveries_claim(self, params: DeliveryClaim) -> list[DueDelivery]:
        """Due deliveries, each under a fresh lease."""
        token = uuid.uuid4()
        rows = await self._db.fetch("webhook_delivery_claim", params, token=token)
        return [_due(row, token) for row in rows]

    async def deliveries_record(self, outcomes: Sequence[DeliveryOutcome]) -> int:
        """Write attempts' outcomes where their lease holds; how many were written."""
        if not outcomes:
            return 0
        encoded = [
            {
                "id": o.id,
                "token": o.token,
                "state": o.state.value,
                "retry_in": o.retry_in,
                "status_code": o.status_code,
                "error": o.error,
                "duration_ms": o.duration_ms,
                "body": o.body,
            }
            for o in outcomes
        ]
        rows = await self._db.fetch(
            "webhook_delivery_record",
            outcomes=RawJSON(orjson.dumps(encoded)),
            ids=[o.id for o in outcomes],
            gone=sorted({o.gone for o in outcomes if o.gone is not None}),
        )
        return len(rows)

    async def deliveries_list(self, params: DeliveryListing) -> list[WebhookDelivery]:
        """A subscription's deliveries, newest first."""
        rows = await self._db.fetch("webhook_delivery_list", params)
        return [
            WebhookDelivery(
                id=row["id"],
                message_id=message_id(row["id"]),
                job_id=row["job_id"],
                event_id=row["event_id"],
                event_type=row["event_type"],
                event_at=row["event_at"],
                state=DeliveryState(row["state"]),
                attempts=[
                    DeliveryAttempt(
                        at=datetime.fromisoformat(a["at"]),
                        status_code=a.get("status_code"),
                        error=a.get("error"),
                        duration_ms=a.get("duration_ms"),
                    )
                    for a in row["history"]
                ],
                next_attempt_at=row["next_attempt_at"],
                created_at=row["created_at"],
                finished_at=row["finished_at"],
            )
            for row in rows
        ]


def _webhook(row: asyncpg.Record) -> Webhook:
    return Webhook(
        id=row["id"],
        url=row["url"],
        events=row["events"],
        queues=row["queues"],
        tasks=row["tasks"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        previous_secret_until=row["previous_until"],
        disabled_at=row["disabled_at"],
        disabled_reason=row["disabled_reason"],
    )


def _due(row: asyncpg.Record, token: uuid.UUID) -> DueDelivery:
    secrets = tuple(s for s in (row["secret"], row["previous_secret"]) if s is not None)
    job_row = row["job"]
    return DueDelivery(
        id=row["id"],
        token=token,
        url=row["url"],
        secrets=secrets,
        event=JobEvent(
            id=row["event_id"],
            job_id=row["job_id"],
            type=EventType(row["event_type"]),
            at=row["event_at"],
            data=row["event_data"],
        ),
        attempts=row["attempts"],
        body=row["body"],
        job=None if job_row is None else job_from_row(job_row),
        disabled=row["disabled"],
        subscription=row["webhook_id"],
    )
