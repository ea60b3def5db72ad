from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime

import orjson
import pytest

from jqs.api.render import (
    BODY_CHUNK_BYTES,
    JSONResponse,
    inserted_alike,
    inserted_jobs,
    job_array,
    job_array_whole,
    listed_job,
)
from jqs.jsonutil import RawJSON
from jqs.models import EnqueueOptions, Inserted, InsertedAlike, Job, JobStatus, JobText

CREATED = datetime(2026, 11, 29, 8, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "options",
    [
        EnqueueOptions(),
        EnqueueOptions(queue='é"\\q', priority=-7, max_attempts=1, timeout=0.25),
        EnqueueOptions(run_at=datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_inserted_jobs_render_as_the_jobs_they_are(options: EnqueueOptions) -> None:
    run_at = options.run_at or CREATED
    values = [{"task": "a"}, {}, {"task": 'x"\\y', "l": [1, None]}, {"task": "a"}]
    payloads = [RawJSON(orjson.dumps(p)) for p in values]
    tasks = ["a", None, 'x"\\y', "a"]
    inserted = [
        Inserted(i, t, CREATED, run_at) for i, t in zip([1, 22, 333, 2**62], tasks, strict=True)
    ]
    rendered = orjson.dumps(inserted_jobs(inserted, payloads, [options] * len(payloads)))
    expected = [
        Job(
            id=new.id,
            payload=payload,
            status=JobStatus.QUEUED,
            result=None,
            created_at=CREATED,
            updated_at=CREATED,
            task=new.task,
            queue=options.queue,
            priority=options.priority,
            run_at=run_at,
            attempts=0,
            max_attempts=options.max_attempts,
            started_at=None,
            finished_at=None,
            timeout=options.timeout,
            cancel_requested=False,
        )
        for new, payload in zip(inserted, values, strict=True)
    ]
    assert rendered == orjson.dumps(expected)
    alike = InsertedAlike([new.id for new in inserted], tasks, CREATED, run_at)
    assert orjson.dumps(inserted_alike(alike, payloads, options)) == rendered
    # Every field of the job's one definition, in its order.
    assert list(orjson.loads(rendered)[0]) == [field.name for field in fields(Job)]


def _job(job_id: int, **changes: object) -> Job:
    values: dict[str, object] = {
        "id": job_id,
        "payload": {"task": 'x"\\y', "é": [1, None]},
        "status": JobStatus.COMPLETED,
        "result": {"ok": True},
        "created_at": CREATED,
        "updated_at": CREATED,
        "task": 'x"\\y',
        "queue": "q\u2028",
        "priority": -3,
        "run_at": CREATED,
        "attempts": 1,
        "max_attempts": 3,
        "started_at": CREATED,
        "finished_at": None,
        "timeout": 2.5,
        "cancel_requested": False,
        "errors": [{"type": "E"}],
    }
    values.update(changes)
    return Job(**values)  # type: ignore[arg-type]


def test_job_text_has_the_jobs_fields_in_order() -> None:
    names = [f.name for f in fields(Job)]
    assert [f.name for f in fields(JobText)] == names[: names.index("waiting_for_worker")]


@pytest.mark.parametrize("waiting", [False, True])
@pytest.mark.parametrize("result", [None, {"ok": True}, [1, "two"]])
@pytest.mark.parametrize(
    "progress",
    [None, {"progress": 0.4, "message": "4 of 10", "data": {"é": 1}, "at": "2026-11-29T08:00Z"}],
)
def test_a_listed_job_renders_as_the_job_it_is(
    waiting: bool, result: object, progress: object
) -> None:
    job = _job(7, result=result, waiting_for_worker=waiting, progress=progress)
    text = b"".join(listed_job(JobText.of(job), waiting))
    assert text == orjson.dumps(job)  # byte for byte: the same fields, order and values


async def _body(first: list[JobText] | None, *rest: list[JobText]) -> list[bytes]:
    async def chunks() -> AsyncIterator[list[JobText]]:
        for chunk in rest:
            yield chunk

    read: list[Sequence[JobText]] = [] if first is None else [first]
    return [message async for message in job_array(read, chunks(), lambda queue: True)]


async def test_a_listing_body_is_the_json_array_of_its_jobs() -> None:
    small = [_job(i, status=JobStatus.QUEUED) for i in (9, 8, 7)]
    big = _job(6, payload={"blob": "x" * (BODY_CHUNK_BYTES * 2)})
    texts = [JobText.of(job) for job in [*small, big]]
    messages = await _body(texts[:2], [], texts[2:])
    assert orjson.loads(b"".join(messages)) == orjson.loads(
        orjson.dumps([replace(job, waiting_for_worker=True) for job in small] + [big])
    )
    # The big payload goes as a message of its own, as the store gave it.
    assert any(message is texts[3].payload for message in messages)
    assert await _body(None) == [b"[]"]
    one = replace(small[0], waiting_for_worker=True)
    assert b"".join(await _body([texts[0]])) == orjson.dumps([one])
    assert job_array_whole(texts[:1], lambda queue: True) == orjson.dumps([one])
    assert job_array_whole([]) == b"[]"


def test_times_always_leave_with_an_offset() -> None:
    # The stores give aware times; a naive one must still not leave without a zone.
    naive = datetime(2031, 1, 2, 3, 4, 5)
    options = EnqueueOptions(run_at=naive)
    jobs = inserted_jobs([Inserted(1, None, naive, naive)], [RawJSON(b"{}")], [options])
    body = orjson.loads(JSONResponse(jobs).body)[0]
    assert body["run_at"] == body["created_at"] == "2031-01-02T03:04:05+00:00"
    job = Job(
        id=1,
        payload={},
        status=JobStatus.QUEUED,
        result=None,
        created_at=naive,
        updated_at=naive,
        task=None,
        queue="default",
        priority=0,
        run_at=naive,
        attempts=0,
        max_attempts=3,
        started_at=None,
        finished_at=None,
        timeout=None,
        cancel_requested=False,
    )
    assert orjson.loads(JSONResponse(job).body)["run_at"] == "2031-01-02T03:04:05+00:00"
