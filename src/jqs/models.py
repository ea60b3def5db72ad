"""Plain typed records shared by the store, the workers and the API.

`Job` is the job's shape, defined once: the store maps rows onto it by column name, the API
documents it (pydantic reads these annotations) and renders it (orjson writes dataclasses
field by field, in this order). A new column is a migration and a field here.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Annotated, Any, NamedTuple
from uuid import UUID

from pydantic import Field

from jqs.jsonutil import RawJSON, dumps, loads

JSONObject = dict[str, Any]


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True once the job will not run again by itself."""
        return self in _FINISHED


_FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
DEFAULT_QUEUE = "default"


@dataclass(frozen=True, slots=True)
class Job:
    """A job as clients see it: the first six fields are the original API's."""

    id: Annotated[int, Field(examples=[1])]
    payload: Annotated[
        JSONObject,
        Field(
            description="the JSON object that was submitted; `task` names the handler",
            examples=[{"task": "send_email", "to": "user@example.com", "subject": "Hello"}],
        ),
    ]
    status: JobStatus
    result: Annotated[
        Any,
        Field(
            description="what the handler returned; the error once the job has failed",
            examples=[{"message": "Job completed successfully"}],
        ),
    ]
    created_at: datetime
    updated_at: datetime
    task: Annotated[str | None, Field(description="payload.task: the handler that runs the job")]
    queue: str
    priority: Annotated[int, Field(description="higher runs first")]
    run_at: Annotated[datetime, Field(description="not started before this time")]
    attempts: Annotated[int, Field(description="attempts started so far")]
    max_attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    timeout: Annotated[
        float | None, Field(description="seconds one attempt may run; null: no limit")
    ]
    cancel_requested: Annotated[bool, Field(description="cancellation was asked for")]
    created_by: Annotated[
        str | None, Field(description="id of the API key that submitted the job")
    ] = None
    errors: Annotated[
        list[Any], Field(description="the error of each failed attempt, oldest first")
    ] = field(default_factory=list)
    progress: Annotated[
        JSONObject | None,
        Field(
            description="the running attempt's latest progress report: "
            "{progress, message, data, at}; null when none",
            examples=[
                {"progress": 0.4, "message": "resized 4 of 10", "at": "2026-01-01T00:00:00Z"}
            ],
        ),
    ] = None
    # Not a column: the API sets it from the live workers when it answers.
    waiting_for_worker: Annotated[
        bool,
        Field(
            description="queued in a queue that no live worker serves: it starts only once "
            "a worker for its queue does"
        ),
    ] = False


# The fields of a job that hold JSON of any size.
JSON_FIELDS = ("payload", "result", "errors", "progress")


@dataclass(frozen=True, slots=True)
class JobText:
    """A job as a listing reads it: `Job`'s fields, with the JSON ones (`JSON_FIELDS`) still
    the JSON text the database gave, so that they pass to the client without being built
    as Python objects (a test holds the fields to Job's)."""

    id: int
    payload: bytes
    status: JobStatus
    result: bytes  # b"null" when there is none
    created_at: datetime
    updated_at: datetime
    task: str | None
    queue: str
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    timeout: float | None
    cancel_requested: bool
    created_by: str | None
    errors: bytes
    progress: bytes  # b"null" when there is none

    def job(self) -> Job:
        """The same job with its JSON parsed."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in JSON_FIELDS:
            values[name] = loads(values[name])
        return Job(**values)

    @classmethod
    def of(cls, job: Job) -> JobText:
        """A job with its JSON written out as text."""
        values = {f.name: getattr(job, f.name) for f in fields(cls)}
        for name in JSON_FIELDS:
            values[name] = dumps(values[name])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class EnqueueOptions:
    """How a job is to be run; resolved by the API before the insert (never in the payload).

    `run_at` wins over `delay` (seconds from now on the store's clock); neither: now.
    """

    queue: str = DEFAULT_QUEUE
    priority: int = 0
    run_at: datetime | None = None
    delay: float = 0.0
    max_attempts: int = 3
    timeout: float | None = None
    # Where to POST the job's final event, signed with the submitting key's webhook secret.
    callback_url: str | None = None


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to insert: its payload as JSON text, and its options."""

    payload: RawJSON
    options: EnqueueOptions = EnqueueOptions()
    created_by: str | None = None  # the id of the API key that submitted it
    trace_context: str | None = None  # the submitting span's traceparent (tracing on)


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """The Idempotency-Key a job was submitted with, and a digest of that request."""

    key: str
    request_digest: str


class InsertOutcome(enum.Enum):
    """What an insert with an idempotency key found."""

    CREATED = "created"
    DUPLICATE = "duplicate"  # same key, same request: the original job
    CONFLICT = "conflict"  # same key, another request


@dataclass(frozen=True, slots=True)
class Inserted:
    """What the store decided for one job just inserted; the rest is what was sent."""

    id: int
    task: str | None
    created_at: datetime
    run_at: datetime


@dataclass(frozen=True, slots=True)
class InsertedAlike:
    """Jobs inserted together with the same options: their ids and tasks in input order,
    and the times they all share."""

    ids: list[int]
    tasks: list[str | None]
    created_at: datetime
    run_at: datetime


def shared_options(options: Sequence[EnqueueOptions]) -> EnqueueOptions | None:
    """The options every job has, or None when they differ (or there are no jobs)."""
    if not options:
        return None
    first = options[0]
    if all(each is first or each == first for each in options):
        return first
    return None


class Lease(NamedTuple):
    """A claim on a running job: every write that ends the attempt must present it."""

    job_id: int
    token: UUID


class ClaimedJob(NamedTuple):
    """A job a worker has claimed, and the lease that fences every write ending it.

    Named tuples, not frozen dataclasses: a worker makes one of each per job, tens of
    thousands a second, and a tuple is built several times faster.
    """

    id: int
    payload: JSONObject
    task: str | None
    queue: str
    attempt: int
    max_attempts: int
    timeout: float | None
    lease: Lease
    waited: float = 0.0  # seconds from when the job was due to its claim
    trace_context: str | None = None  # the submitting span's traceparent, if traced
    lease_expires_at: datetime | None = None  # on the database's clock


class HeldJob(NamedTuple):
    """A running attempt whose lease is still held, as deciding its outcome needs it."""

    id: int
    task: str | None
    queue: str
    attempt: int
    max_attempts: int
    cancel_requested: bool
    lease_expires_at: datetime
    worker_id: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """Jobs claimed, and when a rate limit will next allow one (seconds), if it held any back.

    `limited`: a queue with limits or a pause was among those asked, so fewer jobs than
    asked for does not mean that none were left.
    `ask_again`: the next claim waits where it is made until work arrives (a long-poll over
    HTTP), so it is made at once instead of after a poll interval.
    """

    jobs: list[ClaimedJob]
    rate_wait: float | None = None
    limited: bool = False
    ask_again: bool = False


@dataclass(frozen=True, slots=True)
class LeaseCheck:
    """What a look at running jobs' leases found."""

    lost: frozenset[int]  # another worker owns these now (or they ended)
    cancel_requested: frozenset[int]
    # When each lease extended by the look now ends (only when it extended them).
    expires_at: dict[int, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """A queue's limits; None means unlimited."""

    name: str
    concurrency_limit: int | None = None
    rate_limit: float | None = None
    paused: bool = False
    max_queued: int | None = None  # queued jobs at most, before submitting answers 429


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """A queue with a bound on its queued jobs, and how many it holds (counted up to the
    bound: a fuller queue reads as `max_queued`)."""

    name: str
    max_queued: int
    queued: int


@dataclass(frozen=True, slots=True)
class QueueRemoval:
    """What removing a queue's settings found: whether it had any, and its jobs that have
    not finished (none, or nothing was removed)."""

    name: str
    found: bool
    unfinished: int

    @property
    def removed(self) -> bool:
        """Whether the settings are gone now."""
        return self.found and self.unfinished == 0


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue as operators see it: settings, counts by status, wait of the oldest job, and
    the live workers that serve it."""

    settings: QueueSettings
    counts: dict[JobStatus, int]
    oldest_queued_seconds: float | None
    workers: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class QueueActivity:
    """A queue's unfinished jobs: queued, running, and the wait of the oldest due one."""

    name: str
    queued: int = 0
    running: int = 0
    oldest_wait_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Throughput:
    """Jobs that finished in one minute: completed, and failed (for good)."""

    minute: datetime
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class RescuedJob:
    """A job whose lease expired, and where the rescuer put it."""

    id: int
    task: str | None
    queue: str
    attempt: int
    status: JobStatus
    worker: str | None


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What `GET /jobs` may narrow the list by."""

    status: JobStatus | None = None
    task: str | None = None
    # The jobs an API key is limited to; None: every queue (task).
    queues: frozenset[str] | None = None
    tasks: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live worker: who it is, what it serves, and when it last said so."""

    id: str
    host: str
    queues: list[str]
    version: str
    concurrency: int
    started_at: datetime
    last_seen_at: datetime
    running: int = 0


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as operators see it: never its secret, which is shown once at creation.

    `queues` and `tasks`: None allows every queue (task); otherwise only those listed.
    `rate_limit`: requests per second per JQS process; None: no limit.
    """

    id: str
    name: str
    scopes: list[str]
    queues: list[str] | None
    tasks: list[str] | None
    rate_limit: float | None
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None


class EventType(enum.StrEnum):
    """What happened to a job: the names of its events, as every stream and webhook uses."""

    ENQUEUED = "job.enqueued"
    STARTED = "job.started"
    PROGRESS = "job.progress"
    RETRY_SCHEDULED = "job.retry_scheduled"
    COMPLETED = "job.completed"
    FAILED = "job.failed"
    CANCEL_REQUESTED = "job.cancel_requested"
    CANCELLED = "job.cancelled"
    RESCUED = "job.rescued"
    RELEASED = "job.released"

    @property
    def final(self) -> bool:
        """True for the events that end a job (completed, failed, cancelled)."""
        return self in _FINAL_EVENTS


_FINAL_EVENTS = frozenset({EventType.COMPLETED, EventType.FAILED, EventType.CANCELLED})


class EventCursor(NamedTuple):
    """A position in the log of every job's events: after the event (xid, id) in the order
    the log is read, by the writing transaction's id, then the event's."""

    xid: int
    id: int

    def __str__(self) -> str:
        return f"{self.xid}-{self.id}"

    @classmethod
    def parse(cls, text: str) -> EventCursor:
        """The cursor written by str(); ValueError for anything else."""
        xid, _, event_id = text.strip().partition("-")
        cursor = cls(int(xid), int(event_id))
        if cursor.xid < 0 or cursor.id < 0:
            raise ValueError(f"not an event position: {text!r}")
        return cursor


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One change of one job, as the log keeps it. `queue` and `task` are the job's (None
    once the job is gone); `xid` places it in the log of every job (see EventCursor)."""

    id: int
    job_id: int
    type: EventType
    at: datetime
    data: JSONObject | None = None
    queue: str | None = None
    task: str | None = None
    xid: int = 0

    @property
    def cursor(self) -> EventCursor:
        """The position just after this event."""
        return EventCursor(self.xid, self.id)


@dataclass(frozen=True, slots=True)
class EventPage:
    """Events read from the log, and where it stands: every event below `horizon` (an xid)
    has been read or is in `events`; `pending`: events at or above it exist already."""

    events: list[JobEvent]
    horizon: int
    pending: bool


@dataclass(frozen=True, slots=True)
class Progress:
    """A handler's report of how far its attempt has got."""

    progress: float  # 0 to 1
    message: str | None = None
    data: JSONObject | None = None

    def json(self) -> JSONObject:
        """As the job's `progress` field holds it (the store adds `at`)."""
        out: JSONObject = {"progress": self.progress}
        if self.message is not None:
            out["message"] = self.message
        if self.data is not None:
            out["data"] = self.data
        return out


class DeliveryState(enum.StrEnum):
    """Where a webhook delivery stands."""

    PENDING = "pending"  # an attempt is due, running, or scheduled
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # every attempt of the schedule failed, or the receiver answered 410
    DROPPED = "dropped"  # its subscription was disabled before it was delivered


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook subscription as operators see it (never its secret).

    `events`: the event types it receives; `queues`/`tasks`: None for every one.
    `previous_secret_until`: after a rotation, when the old secret stops signing too.
    `disabled_at`: set when its receiver answered 410 Gone; nothing more is sent.
    """

    id: str
    url: str
    events: list[str]
    queues: list[str] | None
    tasks: list[str] | None
    created_at: datetime
    created_by: str | None
    previous_secret_until: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One attempt to deliver: its HTTP status (None when no answer came) or its error."""

    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float | None


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event for one subscription, and every attempt to deliver it so far."""

    id: int
    message_id: Annotated[
        str, Field(description="the `webhook-id` header, the same on every attempt")
    ]
    job_id: int
    event_id: int
    event_type: str
    event_at: datetime
    state: DeliveryState
    attempts: list[DeliveryAttempt]
    next_attempt_at: Annotated[
        datetime | None, Field(description="when the next attempt is due; null once done")
    ]
    created_at: datetime
    finished_at: datetime | None


def message_id(delivery_id: int) -> str:
    """A delivery's `webhook-id`: the same on every attempt, so receivers can drop repeats."""
    return f"msg_{delivery_id}"


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery claimed for an attempt, under the lease its claim's token holds.

    `job` is the job as it stands, when the body is yet to be made (`body` None).
    `secrets`: every secret that signs it, the current one first. `disabled`: its
    subscription is gone or disabled, so it is dropped unsent.
    """

    id: int
    token: UUID
    url: str | None
    secrets: tuple[str, ...]
    event: JobEvent
    attempts: int
    body: str | None
    job: Job | None
    disabled: bool
    subscription: str | None
