"""Responses rendered with orjson: jobs, plain JSON and RFC 9457 problem details.

A job is rendered from its one definition (jqs.models.Job): orjson writes the dataclass
field by field. Jobs just inserted are rendered without reading them back: from what was
sent and what the store decided, through a dict with the job's fields in order, made once
per batch and copied per job (orjson renders a dict several times faster than a dataclass,
which a batch of 1,000 jobs feels), with the payload embedded as the client sent it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

import orjson
from starlette.responses import Response

from jqs.jsonutil import RawJSON
from jqs.models import EnqueueOptions, Inserted, InsertedAlike, Job, JobStatus

PROBLEM_CONTENT_TYPE = "application/problem+json"
_JOB_FIELDS = tuple(field.name for field in fields(Job))
# Every time leaves as RFC 3339 with an offset: the stores give aware times, and a naive one
# (none should reach here) is UTC, not a time without a zone.
_TIMES = orjson.OPT_NAIVE_UTC


class JSONResponse(Response):
    """JSON rendered by orjson (dataclasses, datetimes as RFC 3339, UTF-8, compact)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content, option=_TIMES)


def problem(
    status: int, title: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """An application/problem+json answer; `detail` says what to change, never how we failed."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers
    )


def _template(
    options: EnqueueOptions,
    created_at: datetime,
    run_at: datetime,
    waits: Callable[[str], bool],
    created_by: str | None,
) -> dict[str, Any]:
    """A queued job with these options, as a dict in the job's field order (a test holds it
    to orjson's rendering of the Job itself). Its times are rendered here, once for every
    job copied from it."""
    created = orjson.Fragment(orjson.dumps(created_at, option=_TIMES))
    job: dict[str, Any] = dict.fromkeys(_JOB_FIELDS)
    job.update(
        status=JobStatus.QUEUED,
        created_at=created,
        updated_at=created,
        queue=options.queue,
        priority=options.priority,
        run_at=orjson.Fragment(orjson.dumps(run_at, option=_TIMES)),
        attempts=0,
        max_attempts=options.max_attempts,
        timeout=options.timeout,
        cancel_requested=False,
        created_by=created_by,
        errors=(),  # shared by the copies, so immutable (orjson writes [])
        waiting_for_worker=waits(options.queue),
    )
    return job


def _never(queue: str) -> bool:
    return False


def inserted_jobs(
    inserted: Iterable[Inserted],
    payloads: Sequence[RawJSON],
    options: Sequence[EnqueueOptions],
    waits: Callable[[str], bool] = _never,
    created_by: str | None = None,
) -> list[dict[str, Any]]:
    """Jobs just inserted, as GET /jobs/{id} would show them; jobs that share their options
    and times share one template. `waits(queue)`: no live worker serves that queue.
    `created_by`: the API key that submitted them all."""
    templates: dict[tuple[int, datetime, datetime], dict[str, Any]] = {}
    jobs = []
    for new, payload, opts in zip(inserted, payloads, options, strict=True):
        key = (id(opts), new.created_at, new.run_at)  # `options` keeps every object alive
        template = templates.get(key)
        if template is None:
            template = templates[key] = _template(
                opts, new.created_at, new.run_at, waits, created_by
            )
        job = template.copy()  # a copy keeps the fields' order
        job["id"] = new.id
        job["payload"] = orjson.Fragment(bytes(payload))  # orjson wants bytes exactly
        job["task"] = new.task
        jobs.append(job)
    return jobs


def inserted_alike(
    inserted: InsertedAlike,
    payloads: Sequence[RawJSON],
    options: EnqueueOptions,
    waits: Callable[[str], bool] = _never,
    created_by: str | None = None,
) -> list[dict[str, Any]]:
    """`inserted_jobs` for jobs inserted together with the same options: one template."""
    template = _template(options, inserted.created_at, inserted.run_at, waits, created_by)
    jobs = []
    for job_id, task, payload in zip(inserted.ids, inserted.tasks, payloads, strict=True):
        job = template.copy()
        job["id"] = job_id
        job["payload"] = orjson.Fragment(bytes(payload))
        job["task"] = task
        jobs.append(job)
    return jobs
