"""Plain typed records shared by the store, the workers and the API."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any
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


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a worker has claimed; `lease_token` fences every write that finishes it."""

    id: int
    payload: JSONObject
    task: str | None
    queue: str
    attempt: int
    lease_token: UUID


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What `GET /jobs` may narrow the list by."""

    status: JobStatus | None = None
    task: str | None = None
