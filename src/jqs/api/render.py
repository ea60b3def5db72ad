"""Responses rendered with orjson: jobs, plain JSON and RFC 9457 problem details.

A job is rendered from its one definition (jqs.models.Job): orjson writes the dataclass
field by field. Jobs just inserted are rendered without reading them back: from what was
sent and what the store decided, through a dict with the job's fields in order, made once
per batch and copied per job (orjson renders a dict several times faster than a dataclass,
which a batch of 1,000 jobs feels), with the payload embedded as the client sent it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

import orjson
from starlette.responses import Response

from jqs.api.heap import TRIM_AFTER_BYTES, release_free_memory
from jqs.jsonutil import RawJSON
from jqs.models import EnqueueOptions, Inserted, InsertedAlike, Job, JobStatus, JobText

PROBLEM_CONTENT_TYPE = "application/problem+json"
_JOB_FIELDS = tuple(field.name for field in fields(Job))
# A listing's body goes out in messages of about this size; a JSON value this large goes
# out as a message of its own, as the store gave it, rather than copied into a bigger one.
BODY_CHUNK_BYTES = 64 * 1024
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


def listed_job(job: JobText, waiting: bool) -> list[bytes]:
    """A job's JSON (as GET /jobs/{id} renders it), in pieces: the text between its JSON
    values, and the values as the store gave them, never copied into one buffer."""
    between = orjson.dumps(
        {
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
            "timeout": job.timeout,
            "cancel_requested": job.cancel_requested,
            "created_by": job.created_by,
        },
        option=_TIMES,
    )
    return [
        b'{"id":%d,"payload":' % job.id,
        job.payload,
        b',"status":"%s","result":' % job.status.value.encode(),
        job.result,
        b"," + between[1:-1] + b',"errors":',
        job.errors,
        b',"progress":',
        job.progress,
        b',"waiting_for_worker":true}' if waiting else b',"waiting_for_worker":false}',
    ]


class _JobArray:
    """A JSON array of jobs, made as body messages: small pieces are gathered until they
    make a message of BODY_CHUNK_BYTES, large values go as messages of their own."""

    def __init__(self, waits: Callable[[str], bool]) -> None:
        self._waits = waits
        self._gathered: list[bytes] = [b"["]
        self._size = 1
        self._empty = True
        self.sent = 0  # bytes of the messages made so far

    def add(self, jobs: Sequence[JobText]) -> list[bytes]:
        """The messages ready to send once these jobs are added."""
        messages: list[bytes] = []
        for job in jobs:
            waiting = job.status is JobStatus.QUEUED and self._waits(job.queue)
            if not self._empty:
                self._gathered.append(b",")
            self._empty = False
            for piece in listed_job(job, waiting):
                if len(piece) >= BODY_CHUNK_BYTES:
                    if self._gathered:
                        messages.append(self._flush())
                    messages.append(piece)
                    self.sent += len(piece)
                else:
                    self._gathered.append(piece)
                    self._size += len(piece)
        if self._size >= BODY_CHUNK_BYTES:
            messages.append(self._flush())
        return messages

    def end(self) -> bytes:
        """The last message."""
        self._gathered.append(b"]")
        return self._flush()

    def _flush(self) -> bytes:
        message = b"".join(self._gathered)
        self.sent += len(message)
        self._gathered.clear()
        self._size = 0
        return message


def job_array_whole(jobs: Sequence[JobText], waits: Callable[[str], bool] = _never) -> bytes:
    """A listing's whole body, for a page that the store gave in one chunk."""
    array = _JobArray(waits)
    return b"".join([*array.add(jobs), array.end()])


async def job_array(
    read: list[Sequence[JobText]],
    rest: AsyncIterator[Sequence[JobText]],
    waits: Callable[[str], bool] = _never,
) -> AsyncIterator[bytes]:
    """A listing's body from the store's chunks (`read`: those read already): each chunk is
    sent before the next is read, and let go of. `waits(queue)`: as in `inserted_jobs`."""
    array = _JobArray(waits)
    while read:
        messages = array.add(read.pop(0))
        while messages:
            yield messages.pop(0)
    async for jobs in rest:
        messages = array.add(jobs)
        del jobs
        while messages:
            yield messages.pop(0)
    yield array.end()
    if array.sent >= TRIM_AFTER_BYTES:
        release_free_memory()
