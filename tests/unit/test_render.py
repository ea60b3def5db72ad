from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

import orjson
import pytest

from jqs.api.render import JSONResponse, inserted_alike, inserted_jobs
from jqs.jsonutil import RawJSON
from jqs.models import EnqueueOptions, Inserted, InsertedAlike, Job, JobStatus

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
