"""`?wait=S`: answer with a job once it has finished, or after S seconds as it stands.

The request registers with the process's event feed before it reads the job, so that a job
that ends between the read and the wait is not missed; while it waits it costs no query. Its
reads share statements with the other waits' (ApiState.read_job).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Query

from jqs.api.problems import ProblemError
from jqs.api.state import ApiState
from jqs.events.feed import EndsSeen
from jqs.models import Job

MAX_WAIT = 60.0
WAIT_DESCRIPTION = (
    f"wait up to this many seconds (at most {MAX_WAIT:g}) for the job to finish (completed, "
    "failed or cancelled); the answer is the job as it stands then, finished or not"
)
Wait = Annotated[float | None, Query(gt=0, le=MAX_WAIT, description=WAIT_DESCRIPTION)]
# POST /jobs reads its query by hand (jqs.api.options); this is its parameter's document.
WAIT_PARAMETER: dict[str, Any] = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": WAIT_DESCRIPTION,
    "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WAIT},
}


def parse_wait(text: str) -> float:
    """The seconds of a `wait` query parameter; 422 unless 0 < S <= MAX_WAIT."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_WAIT:
        msg = f"must be a number of seconds above 0 and at most {MAX_WAIT:g}"
        raise ProblemError(422, f"query.wait: {msg}", errors=[{"loc": "query.wait", "msg": msg}])
    return seconds


async def job_after_wait(
    state: ApiState, job_id: int, seconds: float, seen: EndsSeen | None = None
) -> Job:
    """The job once it has finished, or after `seconds`, or when the process stops.

    Once woken, the job's end has committed: the read that follows finds it, and needs no
    registration before it. A waiter woken for an end that is not the job's state any more
    (it was retried since) registers again and waits on for what is left of `seconds`.
    `seen`: the ends recorded since before the job was written by this request; when they
    clear it, the job is not read before the wait (it is as written, not finished).
    """
    feed = state.events()
    until = feed.clock.monotonic() + seconds
    while True:
        async with feed.waiting(job_id) as waiter:
            unread = seen is not None and seen.clear_of(job_id)
            if seen is not None:
                seen.stop()
                seen = None
            if not unread:
                job = await state.read_job(job_id)
                if job.status.finished or feed.closed:
                    return job
            left = until - feed.clock.monotonic()
            if left <= 0:
                return await state.read_job(job_id)
            woken = await waiter.wait(feed.clock, left)
        job = await state.read_job(job_id)
        if not woken or job.status.finished or feed.closed:
            return job
