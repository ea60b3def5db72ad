"""Wait for a condition with a deadline instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]], *, within: float = 10.0, interval: float = 0.02
) -> T:
    """Poll `check` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last value: {value!r})")
        await asyncio.sleep(interval)


FINISHED = ("completed", "failed", "cancelled")


def finished(job: dict[str, Any]) -> bool:
    """Whether a job, as the API shows it, has ended."""
    return job["status"] in FINISHED


def job_when(
    client: httpx.Client, job_id: int, done: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """GET /jobs/{job_id} until `done(job)`; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if done(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id} is still {job['status']}: {job}"
        time.sleep(0.1)
