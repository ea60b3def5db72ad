"""Handlers used by the tests (loaded with JQS_TASKS=tests.support.tasks)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from jqs import current_job, task


def _record(payload: dict[str, Any], event: str) -> None:
    """Append one line per execution event, so tests count runs instead of assuming them."""
    path = payload.get("record_to") or os.environ.get("JQS_TEST_RECORD")
    if path:
        job = current_job()
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(f"{event} {job.job_id} {job.attempt} {os.getpid()} {time.time():.6f}\n")


@task("sleep")
async def sleep(payload: dict[str, Any]) -> dict[str, Any]:
    _record(payload, "start")
    await asyncio.sleep(float(payload.get("seconds", 0.1)))
    _record(payload, "end")
    return {"slept": payload.get("seconds", 0.1), "pid": os.getpid()}


@task("sync_sleep")
def sync_sleep(payload: dict[str, Any]) -> dict[str, Any]:
    _record(payload, "start")
    time.sleep(float(payload.get("seconds", 0.1)))
    _record(payload, "end")
    return {"slept": payload.get("seconds", 0.1), "pid": os.getpid()}


@task
def boom(payload: dict[str, Any]) -> None:
    raise ValueError(payload.get("message", "boom"))


@task("exit")
def exit_process(payload: dict[str, Any]) -> None:
    """Kill the process running this job, as a segfaulting extension or OOM kill would."""
    _record(payload, "start")
    os._exit(int(payload.get("code", 1)))


@task("steps")
async def steps(payload: dict[str, Any]) -> dict[str, Any]:
    """Report progress after each of `steps` steps of `seconds` each."""
    count = int(payload.get("steps", 4))
    for done in range(1, count + 1):
        await asyncio.sleep(float(payload.get("seconds", 0.2)))
        current_job().progress(done / count, f"step {done} of {count}")
    return {"steps": count}


@task("flaky")
def flaky(payload: dict[str, Any]) -> dict[str, Any]:
    """Fail the first `times` attempts, then succeed."""
    attempt = current_job().attempt
    if attempt <= int(payload.get("times", 1)):
        raise RuntimeError(f"attempt {attempt} fails")
    return {"succeeded_on": attempt}
