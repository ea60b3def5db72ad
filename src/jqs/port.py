"""The storage port: what the API, the workers and maintenance ask of a store.

Two stores implement it: `PostgresStore` (jqs.store.postgres), the real one, and
`MemoryStore` (jqs.store.memory), for fast tests of the logic above it. Both pass one
contract suite (tests/contract). Parameters are dataclasses; results are the records of
jqs.models. A store raises only JQS's own errors (jqs.errors): StoreError and its
DatabaseUnavailable, JobNotFound.

Each consumer depends on the narrow part it uses: the worker pool on `JobQueue`, the
maintenance services on `Maintenance`, the API on `Jobs` and `Queues`. `Store` is all of
them, as the composition root builds it.

It lives outside jqs.store, whose package imports the database's driver: the worker side
(jqs.worker, and jqs-client[worker], which carries it) needs these shapes and no driver.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol

from jqs.jsonutil import RawJSON
from jqs.models import (
    ApiKey,
    ClaimResult,
    DeliveryState,
    DueDelivery,
    EnqueueOptions,
    EventCursor,
    EventPage,
    HeldJob,
    IdempotencyKey,
    Inserted,
    InsertedAlike,
    InsertOutcome,
    Job,
    JobEvent,
    JobFilter,
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
)
from jqs.outcome import Final

# Largest value of PostgreSQL's bigint: ids beyond it cannot exist.
MAX_JOB_ID = 2**63 - 1
# A worker not heard from for this long is no longer listed as live.
WORKER_SILENCE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ClaimParams:
    """Claim up to `limit` runnable jobs of `queues` for `worker_id`."""

    queues: Sequence[str]
    limit: int
    lease_seconds: float
    worker_id: str
    now: datetime | None = None  # instead of the store's clock for run_at (tests)
    # Only jobs of these tasks (a job without a task counts as ""); None: every task.
    tasks: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class LeaseCheckParams:
    """Look at running jobs' leases; extend them by `extend_by` seconds unless None."""

    leases: Sequence[Lease]
    extend_by: float | None = None


class Finish(NamedTuple):
    """One attempt's end, to be written if `lease` still holds (a named tuple: one per job)."""

    lease: Lease
    outcome: Final


@dataclass(frozen=True, slots=True)
class EventRead:
    """Events of every job after `after`, in the log's order, `limit` at most."""

    after: EventCursor
    limit: int = 500


@dataclass(frozen=True, slots=True)
class EndedRead:
    """Which of `job_ids` have a final event written by a transaction at or above `from_xid`
    (a horizon) that has committed, whether or not the log may be read that far yet."""

    job_ids: Sequence[int]
    from_xid: int


@dataclass(frozen=True, slots=True)
class JobEventsRead:
    """One job's events after the event `after_id` (0: from its first), `limit` at most."""

    job_id: int
    after_id: int = 0
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class FindParams:
    """A page of jobs, newest first: `offset` jobs skipped, then up to `limit`; only jobs
    whose id is below `before_id` when it is given (a keyset cursor)."""

    filter: JobFilter = field(default_factory=JobFilter)
    limit: int = 10
    offset: int = 0
    before_id: int | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A job after an operator's request, and whether the request changed anything."""

    job: Job
    changed: bool


@dataclass(frozen=True, slots=True)
class QueuePatch:
    """Queue settings to change; only the fields named in `given` are changed."""

    name: str
    concurrency_limit: int | None = None
    rate_limit: float | None = None
    paused: bool = False
    max_queued: int | None = None
    given: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class RescueParams:
    """Bring back up to `limit` jobs whose lease expired."""

    limit: int = 500
    now: datetime | None = None  # instead of the store's clock (tests)


@dataclass(frozen=True, slots=True)
class PruneParams:
    """Delete up to `limit` jobs finished more than `older_than` seconds ago."""

    older_than: float
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class ScheduleFire:
    """Enqueue the job of schedule `name` for its time `at`, once across all processes."""

    name: str
    at: datetime
    job: NewJob


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """A worker saying it is alive: who, what it serves, and how busy it is."""

    id: str
    host: str
    queues: Sequence[str]
    version: str
    concurrency: int
    running: int = 0


@dataclass(frozen=True, slots=True)
class NewKey:
    """An API key to store: its public fields and the hash of its secret."""

    id: str
    name: str
    secret_hash: str
    scopes: Sequence[str]
    queues: Sequence[str] | None = None
    tasks: Sequence[str] | None = None
    rate_limit: float | None = None
    expires_at: datetime | None = None
    created_by: str | None = None
    webhook_secret: str | None = None  # signs the callbacks of the jobs it submits


class ActiveKey(NamedTuple):
    """A key that may be used (not revoked, not expired), and the hash of its secret."""

    secret_hash: str
    key: ApiKey


class Jobs(Protocol):
    """Submitting, reading and steering jobs (the API's side)."""

    async def insert(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        """Insert jobs in one transaction (all or none); results in input order."""
        ...

    async def insert_alike(
        self,
        payloads: Sequence[RawJSON],
        options: EnqueueOptions,
        created_by: str | None = None,
        trace_context: str | None = None,
    ) -> InsertedAlike:
        """Insert jobs that share their options in one transaction (all or none)."""
        ...

    async def insert_once(self, job: NewJob, key: IdempotencyKey) -> tuple[Job, InsertOutcome]:
        """Insert unless the key exists: then the job holding it, DUPLICATE or CONFLICT."""
        ...

    async def get(self, job_id: int) -> Job:
        """The job with this id, or JobNotFound."""
        ...

    async def get_many(self, job_ids: Sequence[int]) -> list[Job]:
        """The jobs with these ids, in any order; those that do not exist are left out."""
        ...

    async def find(self, params: FindParams) -> list[Job]:
        """A page of jobs, newest (highest id) first."""
        ...

    def find_text(self, params: FindParams) -> AsyncIterator[Sequence[JobText]]:
        """`find`'s page in chunks, newest first, each job's JSON as text. Each chunk is read
        when the previous one has been taken, and holds a bounded number of bytes (one job
        at least), so a page of big jobs is never held whole; no connection is held between
        chunks. A job deleted meanwhile is left out; each job is as it was when read."""
        ...

    async def cancel(self, job_id: int, result: RawJSON) -> Change:
        """Cancel a queued job now, or ask the worker of a running one to stop it."""
        ...

    async def retry(self, job_id: int) -> Change:
        """Queue a failed or cancelled job again with fresh attempts."""
        ...

    async def ping(self) -> None:
        """Raise DatabaseUnavailable unless the store answers."""
        ...


class JobQueue(Protocol):
    """What a worker does with jobs: claim, keep, end, hand back."""

    async def claim(self, params: ClaimParams) -> ClaimResult:
        """Move runnable jobs to processing under a fresh lease, within the queues' limits."""
        ...

    async def check_leases(self, params: LeaseCheckParams) -> LeaseCheck:
        """Which leases are lost and which jobs were asked to cancel; extends the rest
        (and counts as a sign of life of the workers holding them)."""
        ...

    async def held(self, leases: Sequence[Lease]) -> list[HeldJob]:
        """The running attempts these leases still hold (the others are left out)."""
        ...

    async def finish(self, finishes: Sequence[Finish]) -> list[bool]:
        """Write attempts' ends, each only if its lease holds; per item, whether it did."""
        ...

    async def release(self, leases: Sequence[Lease]) -> int:
        """Hand running jobs back to the queue, the attempt not counted."""
        ...

    async def progress(self, lease: Lease, report: Progress) -> bool:
        """Record the running attempt's progress (and its event) if its lease holds."""
        ...

    async def worker_beat(self, beat: WorkerBeat) -> None:
        """Record that a worker is alive."""
        ...

    async def worker_gone(self, worker_id: str) -> None:
        """Forget a worker that stopped."""
        ...


class Maintenance(Protocol):
    """What the maintenance services do, one process at a time."""

    async def rescue(self, params: RescueParams) -> list[RescuedJob]:
        """Jobs whose lease expired go back to the queue, or end when attempts are spent."""
        ...

    async def prune(self, params: PruneParams) -> int:
        """Delete old finished jobs; how many. 0 while another process is at it."""
        ...

    async def schedule_register(self, name: str, expression: str, start_after: datetime) -> None:
        """Make a schedule known; a new or changed one first fires after `start_after`."""
        ...

    async def schedule_fire(self, params: ScheduleFire) -> int | None:
        """The new job's id, or None when that time was enqueued already."""
        ...

    async def workers_forget(self, silent_for: float) -> int:
        """Forget workers not heard from for `silent_for` seconds; how many."""
        ...


class Queues(Protocol):
    """Queue settings, and what operators see of queues and workers."""

    async def queue_update(self, patch: QueuePatch) -> QueueSettings:
        """Change what the patch gives; the rest stays as it was."""
        ...

    async def queue_delete(self, name: str) -> QueueRemoval:
        """Remove a queue's settings, unless it has queued or running jobs."""
        ...

    async def queue_depths(self) -> list[QueueDepth]:
        """The queues with a `max_queued`, each with its queued jobs counted up to it."""
        ...

    async def queue_activity(self) -> list[QueueActivity]:
        """The queues that have queued or running jobs, by name (the history unread)."""
        ...

    async def queue_infos(self) -> list[QueueInfo]:
        """Every queue that has jobs, settings or workers, by name."""
        ...

    async def workers(self) -> list[WorkerInfo]:
        """The live workers, by id."""
        ...


class Keys(Protocol):
    """API keys: created, listed, revoked; the usable ones read by every API process."""

    async def key_create(self, key: NewKey) -> ApiKey:
        """Store a new key."""
        ...

    async def key_list(self) -> list[ApiKey]:
        """Every key, revoked and expired ones too, oldest first."""
        ...

    async def key_revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key (again is fine); None when no key has that id."""
        ...

    async def key_list_active(self) -> list[ActiveKey]:
        """The keys that may be used now, with their hashes."""
        ...


class Events(Protocol):
    """The log of every job's events: each written with the change it tells of."""

    async def events_of_job(self, params: JobEventsRead) -> list[JobEvent]:
        """One job's events, oldest first (an unknown job has none)."""
        ...

    async def events_read(self, params: EventRead) -> EventPage:
        """Every job's events after a position, as far as none can still appear before
        them: a reader that goes on from the last event's cursor misses none."""
        ...

    async def events_ended(self, params: EndedRead) -> list[int]:
        """The jobs among `job_ids` whose end has committed at or above the horizon: a
        waiter needs no order, so it need not wait for older transactions to end."""
        ...

    async def events_now(self) -> EventCursor:
        """A position before every event yet to be written (some written already may
        follow it too)."""
        ...


@dataclass(frozen=True, slots=True)
class NewWebhook:
    """A subscription to store. `queues`/`tasks` None: every one."""

    id: str
    url: str
    events: Sequence[str]
    secret: str
    queues: Sequence[str] | None = None
    tasks: Sequence[str] | None = None
    created_by: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryClaim:
    """Take up to `limit` due deliveries, each for `lease_seconds` (longer than an attempt)."""

    limit: int
    lease_seconds: float


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one attempt ended: delivered, pending again in `retry_in` seconds, failed (the
    schedule is spent) or dropped. `gone`: the receiver answered 410 (a subscription's is
    then disabled). `body`: the body sent, kept for every later attempt."""

    id: int
    token: uuid.UUID
    state: DeliveryState
    retry_in: float = 0.0
    status_code: int | None = None
    error: str | None = None
    duration_ms: float | None = None
    body: str | None = None
    gone: str | None = None  # the subscription to disable


@dataclass(frozen=True, slots=True)
class DeliveryListing:
    """A subscription's deliveries, newest first, below `before_id` when given."""

    webhook_id: str
    limit: int = 50
    before_id: int | None = None


@dataclass(frozen=True, slots=True)
class SecretRotation:
    """A secret replaced: the old one signs too until `previous_until` (None: there was
    none)."""

    previous_until: datetime | None


class Webhooks(Protocol):
    """Webhook subscriptions, key secrets for callbacks, and the outbox of deliveries."""

    async def webhook_create(self, hook: NewWebhook) -> Webhook:
        """Store a subscription."""
        ...

    async def webhook_list(self) -> list[Webhook]:
        """Every subscription, oldest first."""
        ...

    async def webhook_delete(self, webhook_id: str) -> bool:
        """Delete a subscription and its deliveries; False when there is none."""
        ...

    async def webhook_rotate(self, webhook_id: str, secret: str, overlap: float) -> Webhook | None:
        """Sign with `secret` from now on, and with the old one for `overlap` seconds."""
        ...

    async def key_webhook_secret_rotate(
        self, key_id: str, secret: str, overlap: float
    ) -> SecretRotation | None:
        """A key's new webhook secret; the old one (if any) signs for `overlap` seconds more.
        None when no key has this id."""
        ...

    async def key_has_webhook_secret(self, key_id: str) -> bool:
        """Whether the key exists and has a webhook secret."""
        ...

    async def webhooks_armed(self) -> bool:
        """Whether a delivery can arise at all (an enabled subscription, or a callback)."""
        ...

    async def deliveries_claim(self, params: DeliveryClaim) -> list[DueDelivery]:
        """Due deliveries, each under a fresh lease."""
        ...

    async def deliveries_record(self, outcomes: Sequence[DeliveryOutcome]) -> int:
        """Write attempts' outcomes where their lease holds; how many were written."""
        ...

    async def deliveries_list(self, params: DeliveryListing) -> list[WebhookDelivery]:
        """A subscription's deliveries, newest first."""
        ...


@dataclass(frozen=True, slots=True)
class JobSearch:
    """What the dashboard narrows jobs by; None matches every job. `contains`: a JSON object
    the payload must contain (PostgreSQL's @>). `queues`, `tasks`: those an API key is
    limited to."""

    status: JobStatus | None = None
    queue: str | None = None
    task: str | None = None
    contains: RawJSON | None = None
    since: datetime | None = None
    until: datetime | None = None
    queues: frozenset[str] | None = None
    tasks: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class SearchParams:
    """The matching jobs whose id is above `above_id` (the searched window's floor: no index
    serves a payload search, so it reads a bounded range of ids) and below `before_id` (a
    keyset cursor), newest first, `limit` at most."""

    search: JobSearch
    above_id: int
    before_id: int | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class SearchCount:
    """How many jobs of a window match, and when the window's oldest job was created."""

    matching: int
    oldest_at: datetime | None


class Moved(NamedTuple):
    """A job an operator's request changed, and its queue (to wake its workers)."""

    id: int
    queue: str


@dataclass(frozen=True, slots=True)
class ThroughputRead:
    """Finished jobs per minute over the last `minutes`, from `rows` finished jobs at most
    (the newest), so that a busy hour costs no more than a quiet one."""

    minutes: int = 60
    rows: int = 20_000


class Dashboard(Protocol):
    """What the dashboard reads beyond the API's own: bounded searches and summaries."""

    async def job_search(self, params: SearchParams) -> list[Job]:
        """The matching jobs of the window, newest first."""
        ...

    async def job_search_count(self, params: SearchParams) -> SearchCount:
        """How many jobs of the window match (`limit` not applied)."""
        ...

    async def job_newest_id(self) -> int:
        """The highest job id (0 when there is no job)."""
        ...

    async def cancel_many(self, job_ids: Sequence[int], result: RawJSON) -> list[Moved]:
        """`cancel` for each job at once; the jobs it changed (a running job asked to stop
        once already is not changed again)."""
        ...

    async def retry_many(self, job_ids: Sequence[int]) -> list[Moved]:
        """`retry` for each job at once; the jobs it queued again."""
        ...

    async def throughput(self, params: ThroughputRead) -> list[Throughput]:
        """Completed and failed jobs per minute, oldest minute first; empty minutes left out."""
        ...

    async def queue_settings_list(self) -> list[QueueSettings]:
        """Every queue that has settings, by name."""
        ...


class Store(Jobs, JobQueue, Maintenance, Queues, Keys, Events, Dashboard, Protocol):
    """Everything at once, as the composition root builds it."""
