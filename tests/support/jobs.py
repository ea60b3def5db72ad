"""Putting jobs into a store directly (bypassing HTTP) for worker and store tests."""

from __future__ import annotations

from typing import Any

import orjson

from jqs.jsonutil import RawJSON
from jqs.models import ClaimedJob, EnqueueOptions, Job, NewJob
from jqs.port import ClaimParams, JobQueue, Jobs


def raw(value: object) -> RawJSON:
    return RawJSON(orjson.dumps(value))


def new(payload: dict[str, Any], **options: Any) -> NewJob:
    """A job to insert; one attempt unless the test asks for more."""
    options.setdefault("max_attempts", 1)
    return NewJob(raw(payload), EnqueueOptions(**options))


async def add(store: Jobs, payload: dict[str, Any], **options: Any) -> Job:
    """Insert one job and read it back."""
    [inserted] = await store.insert([new(payload, **options)])
    return await store.get(inserted.id)


async def claim(
    store: JobQueue, queues: list[str] | None = None, limit: int = 100, **params: Any
) -> list[ClaimedJob]:
    """Claim for worker "w" with a 30 s lease unless told otherwise."""
    params.setdefault("lease_seconds", 30.0)
    params.setdefault("worker_id", "w")
    result = await store.claim(ClaimParams(queues=queues or ["default"], limit=limit, **params))
    return result.jobs
