from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from jqs.api.schemas import alike_jobs_json, new_jobs_json
from jqs.jsonutil import RawJSON
from jqs.models import EnqueueOptions, NewJob, NewJobs

CREATED = datetime(2026, 11, 29, 8, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "options",
    [
        EnqueueOptions(),
        EnqueueOptions(queue='é"\\q', priority=-7, max_attempts=1, timeout_seconds=0.25),
        EnqueueOptions(run_at=datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_alike_jobs_render_as_orjson_renders_their_dicts(options: EnqueueOptions) -> None:
    run_at = options.run_at or CREATED
    payloads = [
        RawJSON(orjson.dumps(p))
        for p in [{"task": "a"}, {}, {"task": 'x"\\y', "l": [1, None]}, {"task": "a"}]
    ]
    tasks = ["a", None, 'x"\\y', "a"]
    ids = [1, 22, 333, 2**62]
    inserted = NewJobs(ids, list(tasks), CREATED, run_at)
    created = [NewJob(i, t, CREATED, run_at) for i, t in zip(ids, tasks, strict=True)]
    expected = orjson.dumps(new_jobs_json(created, [(p, options) for p in payloads]))
    assert alike_jobs_json(inserted, payloads, options) == expected
