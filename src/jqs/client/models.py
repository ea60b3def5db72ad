"""The records the client reads from JQS, as plain frozen dataclasses.

The server's records (jqs.models) carry pydantic annotations for its OpenAPI document; the
client installs without pydantic, so it keeps its own copies here. A test holds each to the
schema of the same name in the server's OpenAPI document (fields, and the values of the
enums). A field the server adds later is ignored by an older client.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, TypeVar

JSONObject = dict[str, Any]
T = TypeVar("T")


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
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class EventType(enum.StrEnum):
    """What happened to a job."""

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
        return self in (EventType.COMPLETED, EventType.FAILED, EventType.CANCELLED)


@dataclass(frozen=True, slots=True)
class Progress:
    """A running attempt's latest report of how far it has got (0 to 1)."""

    progress: float
    at: datetime
    message: str | None = None
    data: JSONObject | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the server shows it (GET /jobs/{id})."""

    id: int
    payload: JSONObject
    status: JobStatus
    result: Any
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
    created_by: str | None = None
    errors: list[Any] = field(default_factory=list)
    progress: Progress | None = None
    waiting_for_worker: bool = False

    @property
    def finished(self) -> bool:
        """True once the job will not run again by itself."""
        return self.status.finished


@dataclass(frozen=True, slots=True)
class Event:
    """One change of one job. `cursor` is the stream's `id:` for it: what resumes a stream
    just after it (Last-Event-ID)."""

    id: int
    type: EventType | str  # a type this client does not know yet stays a string
    job_id: int
    at: datetime
    queue: str | None = None
    task: str | None = None
    data: JSONObject | None = None
    cursor: str = ""

    @property
    def final(self) -> bool:
        """True for the events that end a job."""
        return isinstance(self.type, EventType) and self.type.final


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """A queue's limits; None: no limit."""

    name: str
    paused: bool
    concurrency_limit: int | None
    rate_limit: float | None
    max_queued: int | None


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue: its settings, its jobs by status, the wait of its oldest queued job, and the
    live workers that serve it."""

    name: str
    paused: bool
    concurrency_limit: int | None
    rate_limit: float | None
    max_queued: int | None
    counts: dict[str, int]
    oldest_queued_seconds: float | None
    workers: list[str]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key, never with its secret."""

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


@dataclass(frozen=True, slots=True)
class CreatedKey(ApiKey):
    """A key just created, with its secret: shown this once."""

    secret: str = ""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job to submit: its payload and how it is to run (None: the server's default)."""

    payload: JSONObject
    queue: str | None = None
    priority: int | None = None
    run_at: datetime | None = None
    delay: float | None = None
    max_attempts: int | None = None
    timeout: float | None = None

    def options(self) -> dict[str, Any]:
        """The options that were given, as the API takes them."""
        given: dict[str, Any] = {}
        for name in ("queue", "priority", "delay", "max_attempts", "timeout"):
            value = getattr(self, name)
            if value is not None:
                given[name] = value
        if self.run_at is not None:
            given["run_at"] = self.run_at.isoformat()
        return given


# What the clients' methods answer with: a name each, since a method called `list`
# hides the builtin in a class body.
Jobs = list[Job]
Queues = list[Queue]
ApiKeys = list[ApiKey]

_TIMES = frozenset(
    {
        "created_at",
        "updated_at",
        "run_at",
        "started_at",
        "finished_at",
        "at",
        "expires_at",
        "revoked_at",
    }
)


def _time(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def build(cls: type[T], data: JSONObject) -> T:
    """A record from its JSON: the fields this client knows, times parsed."""
    values: dict[str, Any] = {}
    for each in fields(cls):  # type: ignore[arg-type]
        if each.name in data:
            value = data[each.name]
            values[each.name] = _time(value) if each.name in _TIMES else value
    return cls(**values)


def job_of(data: JSONObject) -> Job:
    """A Job from the API's JSON."""
    job = build(Job, data)
    progress = data.get("progress")
    return replace(
        job,
        status=JobStatus(data["status"]),
        progress=None if not isinstance(progress, dict) else build(Progress, progress),
    )


def event_of(data: JSONObject, cursor: str = "") -> Event:
    """An Event from the API's JSON, with the stream's id for it."""
    event = build(Event, data)
    kind: EventType | str
    try:
        kind = EventType(data["type"])
    except ValueError:
        kind = str(data["type"])
    return replace(event, type=kind, cursor=cursor or str(event.id))
