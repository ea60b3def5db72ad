"""MemoryStore: the storage port in a Python dict, on an injected clock.

For tests of everything above the store (the worker pool, maintenance, the API's logic)
that should run in milliseconds without PostgreSQL. It passes the same contract suite as
PostgresStore (tests/contract), so what a test shows with it holds with PostgreSQL too. One
process only: the cross-process guarantees (SKIP LOCKED, advisory locks) are PostgreSQL's
and tested there.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from jqs.clock import Clock, SystemClock
from jqs.errors import JobNotFound, StoreError
from jqs.jsonutil import RawJSON
from jqs.models import (
    ApiKey,
    ClaimedJob,
    ClaimResult,
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
    WorkerInfo,
)
from jqs.outcome import Cancelled, Completed, Failed, Retry
from jqs.port import (
    MAX_JOB_ID,
    WORKER_SILENCE_SECONDS,
    ActiveKey,
    Change,
    ClaimParams,
    EndedRead,
    EventRead,
    FindParams,
    Finish,
    JobEventsRead,
    LeaseCheckParams,
    Moved,
    NewKey,
    PruneParams,
    QueuePatch,
    RescueParams,
    ScheduleFire,
    SearchCount,
    SearchParams,
    ThroughputRead,
    WorkerBeat,
)
from jqs.store.containment import contains
from jqs.store.limits import LimitedQueue, plan_claim, spend_tokens


def _load(raw: RawJSON) -> Any:
    return orjson.loads(bytes(raw))  # orjson takes bytes exactly, not a subclass


def _payload(job: NewJob) -> dict[str, Any]:
    # As the table's CHECK: a payload is a JSON object.
    payload = _load(job.payload)
    if not isinstance(payload, dict):
        raise StoreError("database error: a job's payload must be a JSON object")
    return payload


def _task(payload: dict[str, Any]) -> str | None:
    # As the table's generated column: `payload ->> 'task'`, the text of any JSON value.
    value = payload.get("task")
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


@dataclass(slots=True)
class _Row:
    """One job, every column of the `jobs` table."""

    id: int
    payload: dict[str, Any]
    queue: str
    priority: int
    run_at: datetime
    max_attempts: int
    timeout: float | None
    created_at: datetime
    status: JobStatus = JobStatus.QUEUED
    result: Any = None
    attempts: int = 0
    errors: list[Any] = field(default_factory=list)
    lease_token: uuid.UUID | None = None
    lease_expires_at: datetime | None = None
    worker_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    idempotency_key: str | None = None
    request_digest: str | None = None
    created_by: str | None = None
    trace_context: str | None = None
    progress: dict[str, Any] | None = None
    updated_at: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.updated_at = self.created_at

    @property
    def task(self) -> str | None:
        return _task(self.payload)

    def job(self) -> Job:
        return Job(
            id=self.id,
            payload=self.payload,
            status=self.status,
            result=self.result,
            created_at=self.created_at,
            updated_at=self.updated_at,
            task=self.task,
            queue=self.queue,
            priority=self.priority,
            run_at=self.run_at,
            attempts=self.attempts,
            max_attempts=self.max_attempts,
            started_at=self.started_at,
            finished_at=self.finished_at,
            timeout=self.timeout,
            cancel_requested=self.cancel_requested_at is not None,
            created_by=self.created_by,
            errors=list(self.errors),
            progress=self.progress,
        )

    def end_lease(self, status: JobStatus, now: datetime) -> None:
        self.status = status
        self.progress = None
        self.lease_token = None
        self.lease_expires_at = None
        self.updated_at = now


@dataclass(slots=True)
class _Queue:
    settings: QueueSettings
    tokens: float = 0.0
    refilled_at: datetime = field(default_factory=lambda: datetime.min.replace(tzinfo=UTC))


def _start_order(row: _Row) -> tuple[int, datetime, int]:
    return (-row.priority, row.run_at, row.id)


class MemoryStore:
    """Every operation of the storage port (jqs.port.Store), in memory."""

    def __init__(
        self,
        clock: Clock | None = None,
        on_events: Callable[[], None] = lambda: None,
        on_ended: Callable[[Sequence[int]], None] = lambda _: None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.on_events = on_events
        self.on_ended = on_ended  # as PostgresStore's
        # One transaction at a time: an event's xid is its id, and the log has no horizon.
        self._events: list[JobEvent] = []
        self._last_event = 0
        self._jobs: dict[int, _Row] = {}
        self._last_id = 0
        self._queues: dict[str, _Queue] = {}
        self._schedules: dict[str, tuple[str, datetime | None]] = {}
        self._workers: dict[str, WorkerInfo] = {}
        self._keys: dict[str, tuple[str, ApiKey]] = {}

    def _now(self) -> datetime:
        return self.clock.now()

    def _emit(
        self, row: _Row, kind: EventType, now: datetime, data: dict[str, Any] | None = None
    ) -> None:
        self._last_event += 1
        number = self._last_event
        self._events.append(JobEvent(number, row.id, kind, now, data, xid=number))

    # Jobs

    def _add(self, job: NewJob, now: datetime, **columns: Any) -> _Row:
        payload = _payload(job)
        o = job.options
        self._last_id += 1
        row = _Row(
            id=self._last_id,
            payload=payload,
            queue=o.queue,
            priority=o.priority,
            run_at=o.run_at or now + timedelta(seconds=o.delay),
            max_attempts=o.max_attempts,
            timeout=o.timeout,
            created_at=now,
            created_by=job.created_by,
            trace_context=job.trace_context,
            **columns,
        )
        self._jobs[row.id] = row
        return row

    async def insert(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        """Insert jobs (all or none); results in input order."""
        now = self._now()
        for job in jobs:  # all or none: check every payload before adding any
            _payload(job)
        rows = [self._add(job, now) for job in jobs]
        for row in rows:
            self._emit(row, EventType.ENQUEUED, now)
        if rows:
            self.on_events()
        return [Inserted(row.id, row.task, row.created_at, row.run_at) for row in rows]

    async def insert_alike(
        self,
        payloads: Sequence[RawJSON],
        options: EnqueueOptions,
        created_by: str | None = None,
        trace_context: str | None = None,
    ) -> InsertedAlike:
        """Insert jobs that share their options (all or none)."""
        if not payloads:
            raise ValueError("no jobs to insert")
        inserted = await self.insert(
            [NewJob(payload, options, created_by, trace_context) for payload in payloads]
        )
        return InsertedAlike(
            ids=[new.id for new in inserted],
            tasks=[new.task for new in inserted],
            created_at=inserted[0].created_at,
            run_at=inserted[0].run_at,
        )

    async def insert_once(self, job: NewJob, key: IdempotencyKey) -> tuple[Job, InsertOutcome]:
        """Insert unless the key exists; then the job holding it, DUPLICATE or CONFLICT."""
        for row in self._jobs.values():
            if row.idempotency_key == key.key:
                same = row.request_digest == key.request_digest
                return row.job(), InsertOutcome.DUPLICATE if same else InsertOutcome.CONFLICT
        row = self._add(
            job, self._now(), idempotency_key=key.key, request_digest=key.request_digest
        )
        self._emit(row, EventType.ENQUEUED, row.created_at)
        self.on_events()
        return row.job(), InsertOutcome.CREATED

    def _row(self, job_id: int) -> _Row:
        row = self._jobs.get(job_id) if 0 < job_id <= MAX_JOB_ID else None
        if row is None:
            raise JobNotFound(job_id)
        return row

    async def get(self, job_id: int) -> Job:
        """The job with this id, or JobNotFound."""
        return self._row(job_id).job()

    async def get_many(self, job_ids: Sequence[int]) -> list[Job]:
        """The jobs with these ids; those that do not exist are left out."""
        rows = (self._jobs.get(job_id) for job_id in set(job_ids))
        return [row.job() for row in rows if row is not None]

    async def find(self, params: FindParams) -> list[Job]:
        """A page of jobs, newest first."""
        wanted = params.filter
        rows = [
            row
            for row in sorted(self._jobs.values(), key=lambda row: -row.id)
            if (wanted.status is None or row.status is wanted.status)
            and (wanted.task is None or row.task == wanted.task)
            and (params.before_id is None or row.id < params.before_id)
            and (wanted.queues is None or row.queue in wanted.queues)
            and (wanted.tasks is None or (row.task or "") in wanted.tasks)
        ]
        return [row.job() for row in rows[params.offset : params.offset + params.limit]]

    async def find_text(self, params: FindParams) -> AsyncIterator[list[JobText]]:
        """`find`'s page, one job per chunk (the smallest chunks a store may give)."""
        for job in await self.find(params):
            yield [JobText.of(job)]

    async def cancel(self, job_id: int, result: RawJSON) -> Change:
        """Cancel a queued job now, or ask the worker of a running one to stop it."""
        row = self._row(job_id)
        if row.status not in (JobStatus.QUEUED, JobStatus.PROCESSING):
            return Change(row.job(), changed=False)
        now = self._now()
        if row.status is JobStatus.QUEUED:
            row.status = JobStatus.CANCELLED
            row.result = _load(result)
            row.finished_at = now
            self._emit(row, EventType.CANCELLED, now)
        elif row.cancel_requested_at is None:
            self._emit(row, EventType.CANCEL_REQUESTED, now)
        row.cancel_requested_at = row.cancel_requested_at or now
        row.updated_at = now
        self.on_events()
        if row.status.finished:
            self.on_ended([row.id])
        return Change(row.job(), changed=True)

    async def retry(self, job_id: int) -> Change:
        """Queue a failed or cancelled job again with fresh attempts."""
        row = self._row(job_id)
        if row.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            return Change(row.job(), changed=False)
        now = self._now()
        row.end_lease(JobStatus.QUEUED, now)
        row.attempts = 0
        row.run_at = now
        row.result = row.cancel_requested_at = row.worker_id = None
        row.started_at = row.finished_at = None
        self._emit(row, EventType.ENQUEUED, now, {"retry": True})
        self.on_events()
        return Change(row.job(), changed=True)

    async def ping(self) -> None:
        """Always answers."""

    # The worker's side

    async def claim(self, params: ClaimParams) -> ClaimResult:
        """Move runnable jobs to processing under a fresh lease, within the queues' limits."""
        now = self._now()
        limited = {
            name: self._limited(queue)
            for name, queue in self._queues.items()
            if name in params.queues and self._is_limited(queue.settings)
        }
        plan = plan_claim(params.queues, limited, params.limit, now)
        due_by = params.now or now
        candidates: list[_Row] = []
        for name, cap, max_running in zip(plan.names, plan.caps, plan.max_running, strict=True):
            if max_running is not None:
                cap = min(cap, max(max_running - self._running(name), 0))
            runnable = sorted(
                (
                    row
                    for row in self._jobs.values()
                    if row.status is JobStatus.QUEUED
                    and row.queue == name
                    and row.run_at <= due_by
                    and (params.tasks is None or (row.task or "") in params.tasks)
                ),
                key=_start_order,
            )
            candidates += runnable[:cap]
        picked = sorted(candidates, key=_start_order)[: params.limit]
        token = uuid.uuid4()
        for row in picked:
            row.status = JobStatus.PROCESSING
            row.attempts += 1
            row.lease_token = token
            row.lease_expires_at = now + timedelta(seconds=params.lease_seconds)
            row.worker_id = params.worker_id
            row.started_at = row.updated_at = now
            self._emit(
                row, EventType.STARTED, now, {"attempt": row.attempts, "worker": params.worker_id}
            )
        if picked:
            self.on_events()
        spent = spend_tokens(limited, Counter(row.queue for row in picked), plan, now)
        for bucket in spent:
            self._queues[bucket.name].tokens = bucket.tokens
            self._queues[bucket.name].refilled_at = bucket.at
        jobs = [
            ClaimedJob(
                id=row.id,
                payload=row.payload,
                task=row.task,
                queue=row.queue,
                attempt=row.attempts,
                max_attempts=row.max_attempts,
                timeout=row.timeout,
                lease=Lease(row.id, token),
                waited=(now - row.run_at).total_seconds(),
                trace_context=row.trace_context,
                lease_expires_at=row.lease_expires_at,
            )
            for row in picked
        ]
        return ClaimResult(jobs, plan.rate_wait, limited=bool(limited))

    @staticmethod
    def _is_limited(settings: QueueSettings) -> bool:
        return (
            settings.paused
            or settings.concurrency_limit is not None
            or settings.rate_limit is not None
        )

    @staticmethod
    def _limited(queue: _Queue) -> LimitedQueue:
        s = queue.settings
        return LimitedQueue(
            s.name, s.concurrency_limit, s.rate_limit, s.paused, queue.tokens, queue.refilled_at
        )

    def _running(self, queue: str) -> int:
        return sum(
            1
            for row in self._jobs.values()
            if row.status is JobStatus.PROCESSING and row.queue == queue
        )

    def _held(self, leases: Iterable[Lease]) -> Iterable[_Row]:
        for lease in leases:
            row = self._jobs.get(lease.job_id)
            if row is not None and row.lease_token == lease.token:
                yield row

    async def check_leases(self, params: LeaseCheckParams) -> LeaseCheck:
        """Which leases are lost and which jobs were asked to cancel; extends the rest."""
        held = list(self._held(params.leases))
        extended: dict[int, datetime] = {}
        if params.extend_by is not None:
            now = self._now()
            expires = now + timedelta(seconds=params.extend_by)
            for row in held:
                row.lease_expires_at = expires
                extended[row.id] = expires
                worker = self._workers.get(row.worker_id or "")
                if worker is not None:
                    self._workers[worker.id] = replace(worker, last_seen_at=now)
        return LeaseCheck(
            lost=frozenset(lease.job_id for lease in params.leases) - {row.id for row in held},
            cancel_requested=frozenset(row.id for row in held if row.cancel_requested_at),
            expires_at=extended,
        )

    async def held(self, leases: Sequence[Lease]) -> list[HeldJob]:
        """The running attempts these leases still hold (the others are left out)."""
        return [
            HeldJob(
                id=row.id,
                task=row.task,
                queue=row.queue,
                attempt=row.attempts,
                max_attempts=row.max_attempts,
                cancel_requested=row.cancel_requested_at is not None,
                lease_expires_at=row.lease_expires_at or self._now(),
                worker_id=row.worker_id,
            )
            for row in self._held(leases)
            if row.status is JobStatus.PROCESSING
        ]

    async def finish(self, finishes: Sequence[Finish]) -> list[bool]:
        """Write attempts' ends, each only if its lease holds."""
        now = self._now()
        written = []
        for finish in finishes:
            row = next(iter(self._held([finish.lease])), None)
            written.append(row is not None)
            if row is None:
                continue
            outcome = finish.outcome
            attempt: dict[str, Any] = {"attempt": row.attempts}
            if isinstance(outcome, Retry):
                row.end_lease(JobStatus.QUEUED, now)
                error = _load(outcome.error.json)
                row.errors.append(error)
                row.run_at = now + timedelta(seconds=outcome.delay)
                row.finished_at = None
                brief = {k: v for k, v in error.items() if k != "traceback"}
                later = attempt | {"at": row.run_at, "error": brief}
                self._emit(row, EventType.RETRY_SCHEDULED, now, later)
                continue
            if isinstance(outcome, Completed):
                row.end_lease(JobStatus.COMPLETED, now)
                row.result = _load(outcome.result)
                self._emit(row, EventType.COMPLETED, now, attempt)
            elif isinstance(outcome, Failed):
                row.end_lease(JobStatus.FAILED, now)
                row.result = _load(outcome.error.json)
                row.errors.append(row.result)
                brief = {k: v for k, v in row.result.items() if k != "traceback"}
                self._emit(row, EventType.FAILED, now, attempt | {"error": brief})
            elif isinstance(outcome, Cancelled):
                row.end_lease(JobStatus.CANCELLED, now)
                row.result = _load(outcome.result)
                self._emit(row, EventType.CANCELLED, now, attempt)
            row.finished_at = now
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
        now = self._now()
        released = 0
        for row in list(self._held(leases)):
            cancelled = row.cancel_requested_at is not None
            row.end_lease(JobStatus.CANCELLED if cancelled else JobStatus.QUEUED, now)
            row.finished_at = now if cancelled else None
            row.attempts = max(row.attempts - 1, 0)
            row.worker_id = row.started_at = None
            self._emit(row, EventType.CANCELLED if cancelled else EventType.RELEASED, now)
            released += 1
        if released:
            self.on_events()
        return released

    async def progress(self, lease: Lease, report: Progress) -> bool:
        """Record the running attempt's progress (and its event) if its lease holds."""
        row = next(iter(self._held([lease])), None)
        if row is None or row.status is not JobStatus.PROCESSING:
            return False
        now = self._now()
        row.progress = report.json() | {"at": now}
        row.updated_at = now
        self._emit(row, EventType.PROGRESS, now, report.json())
        self.on_events()
        return True

    async def worker_beat(self, beat: WorkerBeat) -> None:
        """Record that a worker is alive."""
        now = self._now()
        known = self._workers.get(beat.id)
        self._workers[beat.id] = WorkerInfo(
            id=beat.id,
            host=beat.host,
            queues=list(beat.queues),
            version=beat.version,
            concurrency=beat.concurrency,
            started_at=known.started_at if known else now,
            last_seen_at=now,
            running=beat.running,
        )

    async def worker_gone(self, worker_id: str) -> None:
        """Forget a worker that stopped."""
        self._workers.pop(worker_id, None)

    # Maintenance

    async def rescue(self, params: RescueParams) -> list[RescuedJob]:
        """Expired leases back to the queue, or ended when attempts are spent."""
        now = self._now()
        cutoff = params.now or now
        expired = sorted(
            (
                row
                for row in self._jobs.values()
                if row.status is JobStatus.PROCESSING
                and row.lease_expires_at is not None
                and row.lease_expires_at < cutoff
            ),
            key=lambda row: row.lease_expires_at or cutoff,
        )[: params.limit]
        rescued = []
        for row in expired:
            error = {
                "error": "the lease expired: the worker running this attempt stopped "
                "heartbeating (it crashed, was killed or stalled)",
                "type": "LeaseExpired",
                "attempt": row.attempts,
                "worker": row.worker_id,
            }
            if row.cancel_requested_at is not None:
                status = JobStatus.CANCELLED
            elif row.attempts >= row.max_attempts:
                status = JobStatus.FAILED
            else:
                status = JobStatus.QUEUED
            row.end_lease(status, now)
            row.errors.append(error)
            if status is JobStatus.QUEUED:
                row.run_at = now
                row.finished_at = None
            else:
                row.result = error
                row.finished_at = now
            rescued.append(
                RescuedJob(row.id, row.task, row.queue, row.attempts, status, row.worker_id)
            )
            self._emit(
                row,
                EventType.RESCUED,
                now,
                {"attempt": row.attempts, "worker": row.worker_id, "status": status},
            )
            if status is JobStatus.FAILED:
                self._emit(row, EventType.FAILED, now, {"attempt": row.attempts, "error": error})
            elif status is JobStatus.CANCELLED:
                self._emit(row, EventType.CANCELLED, now, {"attempt": row.attempts})
        if rescued:
            self.on_events()
            self.on_ended([job.id for job in rescued if job.status.finished])
        return rescued

    async def prune(self, params: PruneParams) -> int:
        """Delete old finished jobs."""
        cutoff = self._now() - timedelta(seconds=params.older_than)
        doomed = sorted(
            (
                row
                for row in self._jobs.values()
                if row.status.finished and row.finished_at is not None and row.finished_at < cutoff
            ),
            key=lambda row: row.finished_at or cutoff,
        )[: params.limit]
        for row in doomed:
            del self._jobs[row.id]
        gone = {row.id for row in doomed}
        self._events = [event for event in self._events if event.job_id not in gone]
        return len(doomed)

    async def schedule_register(self, name: str, expression: str, start_after: datetime) -> None:
        """Make a schedule known; a new or changed one first fires after `start_after`."""
        known = self._schedules.get(name)
        if known is None or known[0] != expression:
            self._schedules[name] = (expression, start_after)

    async def schedule_fire(self, params: ScheduleFire) -> int | None:
        """The new job's id, or None when that time was enqueued already."""
        known = self._schedules.get(params.name)
        if known is None or (known[1] is not None and known[1] >= params.at):
            return None
        self._schedules[params.name] = (known[0], params.at)
        key = f"cron:{params.name}:{params.at.isoformat()}"
        if any(row.idempotency_key == key for row in self._jobs.values()):
            return None
        # Like any job, enqueued now: the scheduled time is when it became due.
        job = NewJob(params.job.payload, replace(params.job.options, run_at=None, delay=0.0))
        row = self._add(job, self._now(), idempotency_key=key)
        self._emit(row, EventType.ENQUEUED, row.created_at, {"schedule": params.name})
        self.on_events()
        return row.id

    async def workers_forget(self, silent_for: float) -> int:
        """Forget workers not heard from for `silent_for` seconds."""
        cutoff = self._now() - timedelta(seconds=silent_for)
        gone = [w.id for w in self._workers.values() if w.last_seen_at < cutoff]
        for worker_id in gone:
            del self._workers[worker_id]
        return len(gone)

    # Queues and workers, as operators see them

    async def queue_update(self, patch: QueuePatch) -> QueueSettings:
        """Change what the patch gives; the rest stays as it was."""
        queue = self._queues.setdefault(patch.name, _Queue(QueueSettings(patch.name)))
        old = queue.settings
        given: Callable[[str], bool] = patch.given.__contains__
        queue.settings = QueueSettings(
            name=patch.name,
            concurrency_limit=patch.concurrency_limit
            if given("concurrency_limit")
            else old.concurrency_limit,
            rate_limit=patch.rate_limit if given("rate_limit") else old.rate_limit,
            paused=patch.paused if given("paused") else old.paused,
            max_queued=patch.max_queued if given("max_queued") else old.max_queued,
        )
        if given("rate_limit"):
            queue.tokens, queue.refilled_at = 0.0, self._now()
        return queue.settings

    async def queue_delete(self, name: str) -> QueueRemoval:
        """Remove a queue's settings, unless it has queued or running jobs."""
        unfinished = sum(
            1
            for row in self._jobs.values()
            if row.queue == name and row.status in (JobStatus.QUEUED, JobStatus.PROCESSING)
        )
        found = name in self._queues
        if found and unfinished == 0:
            del self._queues[name]
        return QueueRemoval(name, found=found, unfinished=unfinished)

    async def queue_depths(self) -> list[QueueDepth]:
        """The queues with a `max_queued`, each with its queued jobs counted up to it."""
        queued = Counter(row.queue for row in self._jobs.values() if row.status is JobStatus.QUEUED)
        return [
            QueueDepth(name, bound, min(queued[name], bound))
            for name, queue in sorted(self._queues.items())
            if (bound := queue.settings.max_queued) is not None
        ]

    async def queue_activity(self) -> list[QueueActivity]:
        """The queues that have queued or running jobs, by name."""
        now = self._now()
        queued: Counter[str] = Counter()
        running: Counter[str] = Counter()
        oldest: dict[str, datetime] = {}
        for row in self._jobs.values():
            if row.status is JobStatus.QUEUED:
                queued[row.queue] += 1
                if row.run_at <= now and (
                    row.queue not in oldest or row.run_at < oldest[row.queue]
                ):
                    oldest[row.queue] = row.run_at
            elif row.status is JobStatus.PROCESSING:
                running[row.queue] += 1
        return [
            QueueActivity(
                name,
                queued[name],
                running[name],
                (now - oldest[name]).total_seconds() if name in oldest else None,
            )
            for name in sorted(queued.keys() | running.keys())
        ]

    async def queue_infos(self) -> list[QueueInfo]:
        """Every queue that has jobs, settings or live workers, by name."""
        now = self._now()
        counts: dict[str, dict[JobStatus, int]] = {}
        oldest: dict[str, datetime] = {}
        for row in self._jobs.values():
            counts.setdefault(row.queue, dict.fromkeys(JobStatus, 0))[row.status] += 1
            if row.status is JobStatus.QUEUED and row.run_at <= now:
                oldest[row.queue] = min(oldest.get(row.queue, row.run_at), row.run_at)
        serving: dict[str, list[str]] = {}
        for worker in await self.workers():
            for name in worker.queues:
                serving.setdefault(name, []).append(worker.id)
        names = sorted(self._queues.keys() | counts.keys() | serving.keys())
        return [
            QueueInfo(
                settings=self._queues[name].settings
                if name in self._queues
                else QueueSettings(name),
                counts=counts.get(name, dict.fromkeys(JobStatus, 0)),
                oldest_queued_seconds=(now - oldest[name]).total_seconds()
                if name in oldest
                else None,
                workers=serving.get(name, []),
            )
            for name in names
        ]

    async def workers(self) -> list[WorkerInfo]:
        """The live workers, by id."""
        cutoff = self._now() - timedelta(seconds=WORKER_SILENCE_SECONDS)
        return sorted(
            (w for w in self._workers.values() if w.last_seen_at >= cutoff), key=lambda w: w.id
        )

    # Dashboard

    def _matches(self, row: _Row, params: SearchParams) -> bool:
        wanted = params.search
        return (
            row.id > params.above_id
            and (params.before_id is None or row.id < params.before_id)
            and (wanted.status is None or row.status is wanted.status)
            and (wanted.queue is None or row.queue == wanted.queue)
            and (wanted.task is None or row.task == wanted.task)
            and (wanted.contains is None or contains(row.payload, _load(wanted.contains)))
            and (wanted.since is None or row.created_at >= wanted.since)
            and (wanted.until is None or row.created_at < wanted.until)
            and (wanted.queues is None or row.queue in wanted.queues)
            and (wanted.tasks is None or (row.task or "") in wanted.tasks)
        )

    async def job_search(self, params: SearchParams) -> list[Job]:
        """The matching jobs of the window, newest first."""
        rows = sorted(self._jobs.values(), key=lambda row: -row.id)
        return [row.job() for row in rows if self._matches(row, params)][: params.limit]

    async def job_search_count(self, params: SearchParams) -> SearchCount:
        """How many jobs of the window match."""
        window = [row for row in self._jobs.values() if row.id > params.above_id]
        oldest = min(window, key=lambda row: row.id, default=None)
        return SearchCount(
            matching=sum(1 for row in window if self._matches(row, params)),
            oldest_at=None if oldest is None else oldest.created_at,
        )

    async def job_newest_id(self) -> int:
        """The highest job id (0 when there is no job)."""
        return max(self._jobs, default=0)

    async def cancel_many(self, job_ids: Sequence[int], result: RawJSON) -> list[Moved]:
        """`cancel` for each job; the jobs it changed."""
        moved = []
        for job_id in sorted(set(job_ids)):
            row = self._jobs.get(job_id)
            if row is None or row.status not in (JobStatus.QUEUED, JobStatus.PROCESSING):
                continue
            if row.status is JobStatus.PROCESSING and row.cancel_requested_at is not None:
                continue
            await self.cancel(job_id, result)
            moved.append(Moved(job_id, row.queue))
        return moved

    async def retry_many(self, job_ids: Sequence[int]) -> list[Moved]:
        """`retry` for each job; the jobs it queued again."""
        moved = []
        for job_id in sorted(set(job_ids)):
            row = self._jobs.get(job_id)
            if row is not None and (await self.retry(job_id)).changed:
                moved.append(Moved(job_id, row.queue))
        return moved

    async def throughput(self, params: ThroughputRead) -> list[Throughput]:
        """Completed and failed jobs per minute, oldest minute first."""
        start = self._now().replace(second=0, microsecond=0) - timedelta(minutes=params.minutes)
        ended = sorted(
            (
                row
                for row in self._jobs.values()
                if row.status.finished and row.finished_at is not None and row.finished_at >= start
            ),
            key=lambda row: row.finished_at or start,
            reverse=True,
        )[: params.rows]
        minutes: dict[datetime, list[int]] = {}
        for row in ended:
            assert row.finished_at is not None
            counts = minutes.setdefault(row.finished_at.replace(second=0, microsecond=0), [0, 0])
            if row.status is JobStatus.COMPLETED:
                counts[0] += 1
            elif row.status is JobStatus.FAILED:
                counts[1] += 1
        return [Throughput(minute, *minutes[minute]) for minute in sorted(minutes)]

    async def queue_settings_list(self) -> list[QueueSettings]:
        """Every queue that has settings, by name."""
        return [self._queues[name].settings for name in sorted(self._queues)]

    # Keys

    async def key_create(self, key: NewKey) -> ApiKey:
        """Store a new key."""
        if key.id in self._keys or any(h == key.secret_hash for h, _ in self._keys.values()):
            raise StoreError("an API key with this id or secret exists already")
        stored = ApiKey(
            id=key.id,
            name=key.name,
            scopes=list(key.scopes),
            queues=None if key.queues is None else list(key.queues),
            tasks=None if key.tasks is None else list(key.tasks),
            rate_limit=key.rate_limit,
            created_at=self._now(),
            created_by=key.created_by,
            expires_at=key.expires_at,
            revoked_at=None,
        )
        self._keys[key.id] = (key.secret_hash, stored)
        return stored

    async def key_list(self) -> list[ApiKey]:
        """Every key, oldest first."""
        return sorted((key for _, key in self._keys.values()), key=lambda k: (k.created_at, k.id))

    async def key_revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key; None when there is none with that id."""
        if key_id not in self._keys:
            return None
        digest, key = self._keys[key_id]
        if key.revoked_at is None:
            key = replace(key, revoked_at=self._now())
            self._keys[key_id] = (digest, key)
        return key

    async def key_list_active(self) -> list[ActiveKey]:
        """The keys usable now, with their hashes."""
        now = self._now()
        return [
            ActiveKey(digest, key)
            for digest, key in self._keys.values()
            if key.revoked_at is None and (key.expires_at is None or key.expires_at > now)
        ]

    # Events

    def _with_job(self, event: JobEvent) -> JobEvent:
        row = self._jobs.get(event.job_id)
        if row is None:
            return event
        return replace(event, queue=row.queue, task=row.task)

    async def events_of_job(self, params: JobEventsRead) -> list[JobEvent]:
        """One job's events, oldest first."""
        found = [
            event
            for event in self._events
            if event.job_id == params.job_id and event.id > params.after_id
        ]
        return [self._with_job(event) for event in found[: params.limit]]

    async def events_read(self, params: EventRead) -> EventPage:
        """Every job's events after a position (all of them are below the horizon)."""
        after = [event for event in self._events if event.cursor > params.after]
        horizon = self._last_event + 1
        return EventPage(
            [self._with_job(event) for event in after[: params.limit]], horizon, pending=False
        )

    async def events_ended(self, params: EndedRead) -> list[int]:
        """The jobs among `job_ids` with a final event at or above `from_xid`."""
        wanted = set(params.job_ids)
        return sorted(
            {
                event.job_id
                for event in self._events
                if event.job_id in wanted and event.xid >= params.from_xid and event.type.final
            }
        )

    async def events_now(self) -> EventCursor:
        """A position before every event yet to be written."""
        return EventCursor(self._last_event + 1, 0)
