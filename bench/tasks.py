"""Handlers for benchmarks (JQS_TASKS=bench.tasks)."""

from __future__ import annotations

import os
import time
from typing import Any, TextIO

from jqs import RetryLater, current_job, task

_starts: TextIO | None = None


@task("noop")
async def noop(payload: dict[str, Any]) -> None:
    """Does nothing: what is measured is JQS itself."""


@task("record_start")
async def record_start(payload: dict[str, Any]) -> None:
    """Write "job_id time" the moment the handler starts (JQS_BENCH_STARTS names the file)."""
    now = time.time()
    global _starts
    if _starts is None:
        _starts = open(os.environ["JQS_BENCH_STARTS"], "a", buffering=1)  # noqa: SIM115 - kept open
    _starts.write(f"{current_job().job_id} {now:.6f}\n")


@task("stamp_end")
async def stamp_end(payload: dict[str, Any]) -> dict[str, float]:
    """Return time.time() as the handler ends: the job's result says when it completed."""
    return {"at": time.time()}


@task("fail_once")
async def fail_once(payload: dict[str, Any]) -> None:
    """Ask for another attempt on the first, succeed on the second: a drain with retries."""
    if current_job().attempt == 1:
        raise RetryLater(0)
