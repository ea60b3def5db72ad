"""Putting jobs into a store directly (bypassing HTTP) for worker and store tests."""

from __future__ import annotations

from typing import Any

import orjson

from jqs.jsonutil import RawJSON
from jqs.models import EnqueueOptions, InsertOutcome, Job
from jqs.store import JobStore


def raw(value: object) -> RawJSON:
    return RawJSON(orjson.dumps(value))


async def add(
    store: JobStore,
    payload: dict[str, Any],
    *,
    max_attempts: int = 1,
    attempt_timeout: float | None = None,
) -> Job:
    """Insert a job; one attempt unless the test asks for more (the seed's behaviour)."""
    job, outcome = await store.insert(
        raw(payload), EnqueueOptions(max_attempts=max_attempts, timeout_seconds=attempt_timeout)
    )
    assert outcome is InsertOutcome.CREATED
    return job
