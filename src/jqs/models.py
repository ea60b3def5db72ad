"""Plain typed records shared by the store, the workers and the API."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

JSONObject = dict[str, Any]


class JobStatus(enum.StrEnum):
    """Where a job is in its life; the seed's four plus `cancelled`."""

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


@dataclass(frozen=True, slots=True)
class Job:
    """One row of the `jobs` table as clients see it."""

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
    timeout_seconds: float | None = None
    cancel_requested: bool = False
    errors: list[Any] = field(default_factory=list)


DEFAULT_QUEUE = "default"


@dataclass(frozen=True, slots=True)
class EnqueueOptions:
    """How a job is to be run; resolved by the API before the insert (never in the payload).

    `run_at` wins over `delay` (seconds from now on the database's clock); neither: now.
    """

    queue: str = DEFAULT_QUEUE
    priority: int = 0
    run_at: datetime | None = None
    delay: float = 0.0
    max_attempts: int = 3
    timeout_seconds: float | None = None
    idempotency_key: str | None = None
    request_digest: str | None = None


class InsertOutcome(enum.Enum):
    """What an insert with an idempotency key found."""

    CREATED = "created"
    DUPLICATE = "duplicate"  # same key, same request: the original job
    CONFLICT = "conflict"  # same key, another request


class NewJob(NamedTuple):
    """What the database decided for a job just inserted; the rest is what was sent."""

    id: int
    task: str | None
    created_at: datetime
    run_at: datetime


class NewJobs(NamedTuple):
    """What the database decided for jobs inserted together with the same options: their
    ids and tasks in input order, and the times they all share."""

    ids: list[int]
    tasks: list[str | None]
    created_at: datetime
    run_at: datetime


def shared_options(rows: Sequence[tuple[object, EnqueueOptions]]) -> EnqueueOptions | None:
    """The options every row has, or None when they differ (or there are no rows)."""
    if not rows:
        return None
    first = rows[0][1]
    if all(options is first or options == first for _, options in rows):
        return first
    return None


class ClaimedJob(NamedTuple):
    """A job a worker has claimed; `lease_token` fences every write that finishes it.

    A named tuple rather than a frozen dataclass: a worker makes tens of thousands a second,
    and a tuple is built several times faster.
    """

    id: int
    payload: JSONObject
    task: str | None
    queue: str
    attempt: int
    max_attempts: int
    timeout_seconds: float | None
    lease_token: UUID


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """Jobs claimed, and when a rate limit will next allow one (seconds), if it held any back.

    `limited`: a queue with limits or a pause was among those asked, so fewer jobs than
    asked for does not mean that none were left.
    """

    jobs: list[ClaimedJob]
    rate_wait: float | None = None
    limited: bool = False


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """A queue's limits; None means unlimited."""

    name: str
    concurrency_limit: int | None = None
    rate_limit: float | None = None
    paused: bool = False


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue as operators see it: settings, counts by status, wait of the oldest job."""

    settings: QueueSettings
    counts: dict[JobStatus, int]
    oldest_queued_seconds: float | None


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
