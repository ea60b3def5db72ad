"""The job as it travels over HTTP, and its documented shape in OpenAPI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, Field

from jqs.jsonutil import RawJSON
from jqs.models import EnqueueOptions, Job, JobStatus, NewJob, NewJobs


class JobOut(BaseModel):
    """A job: the seed's six fields first, then what JQS adds."""

    id: int = Field(examples=[1])
    payload: dict[str, Any] = Field(
        examples=[{"task": "send_email", "to": "user@example.com", "subject": "Hello"}]
    )
    status: JobStatus
    result: Any = Field(default=None, examples=[{"message": "Job completed successfully"}])
    created_at: datetime
    updated_at: datetime
    task: str | None = Field(description="payload.task: the handler that runs the job")
    queue: str
    priority: int = Field(description="higher runs first")
    run_at: datetime = Field(description="not started before this time")
    attempts: int = Field(description="attempts started so far")
    max_attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    timeout: float | None = Field(description="seconds one attempt may run; null: no limit")
    cancel_requested: bool = Field(description="cancellation was asked for")
    errors: list[Any] = Field(description="the error of each failed attempt, oldest first")


def job_to_json(job: Job) -> dict[str, Any]:
    """The wire form of a job, in JobOut's field order (no pydantic round trip)."""
    return {
        "id": job.id,
        "payload": job.payload,
        "status": job.status.value,
        "result": job.result,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "task": job.task,
        "queue": job.queue,
        "priority": job.priority,
        "run_at": job.run_at,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "timeout": job.timeout_seconds,
        "cancel_requested": job.cancel_requested,
        "errors": job.errors,
    }


def new_job_json(new: NewJob, payload: RawJSON, options: EnqueueOptions) -> dict[str, Any]:
    """The wire form of a job just inserted, from what was sent and what the database set.

    The payload goes out as the client sent it (orjson embeds the raw text), without
    reading it back from the database.
    """
    return _set_job(_new_job_base(new, options), new, payload)


def new_jobs_json(
    created: Sequence[NewJob], rows: Sequence[tuple[RawJSON, EnqueueOptions]]
) -> list[dict[str, Any]]:
    """`new_job_json` for many: jobs sharing their options copy one prepared dict."""
    bases: dict[tuple[int, datetime], dict[str, Any]] = {}
    out = []
    for new, (payload, options) in zip(created, rows, strict=True):
        key = (id(options), new.created_at)  # `rows` keeps every options object alive
        base = bases.get(key)
        if base is None:
            base = bases[key] = _new_job_base(new, options)
        out.append(_set_job(base.copy(), new, payload))  # copies keep the keys' order
    return out


def alike_jobs_json(
    inserted: NewJobs, payloads: Sequence[RawJSON], options: EnqueueOptions
) -> bytes:
    """The JSON array of jobs inserted together with the same options, as orjson would
    render `new_jobs_json` of them, byte for byte (a test holds it to that).

    Such jobs differ only in id, payload and task, so everything else is rendered once and
    each job is joined from pieces: at 500 jobs a request, building and rendering a dict
    per job took most of the time the API spent on a batch.
    """
    first = new_job_json(
        NewJob(0, None, inserted.created_at, inserted.run_at), RawJSON(b"null"), options
    )
    rendered = orjson.dumps(first)
    # {"id":0,"payload":null,<status to updated_at>,"task":null,<queue to errors>}
    _, rest = rendered.split(b',"payload":null', 1)
    between, after = rest.split(b',"task":null', 1)
    payload_key, task_key = b',"payload":', between + b',"task":'
    tasks: dict[str | None, bytes] = {}
    parts: list[bytes] = []
    for job_id, payload, task in zip(inserted.ids, payloads, inserted.tasks, strict=True):
        task_json = tasks.get(task)
        if task_json is None:
            task_json = tasks[task] = orjson.dumps(task)
        parts.append(
            b"".join(
                (b'{"id":', str(job_id).encode(), payload_key, payload, task_key, task_json, after)
            )
        )
    return b"[" + b",".join(parts) + b"]"


def _new_job_base(new: NewJob, options: EnqueueOptions) -> dict[str, Any]:
    """What jobs inserted together with the same options share; _set_job fills the rest."""
    return {
        "id": 0,
        "payload": None,
        "status": "queued",
        "result": None,
        "created_at": new.created_at,
        "updated_at": new.created_at,
        "task": None,
        "queue": options.queue,
        "priority": options.priority,
        "run_at": None,
        "attempts": 0,
        "max_attempts": options.max_attempts,
        "started_at": None,
        "finished_at": None,
        "timeout": options.timeout_seconds,
        "cancel_requested": False,
        "errors": (),  # shared by copies, so immutable (orjson writes [])
    }


def _set_job(job: dict[str, Any], new: NewJob, payload: RawJSON) -> dict[str, Any]:
    job["id"] = new.id
    job["payload"] = orjson.Fragment(bytes(payload))  # orjson wants bytes exactly
    job["task"] = new.task
    job["run_at"] = new.run_at
    return job
