"""The overview: throughput, queues' depth and wait, running jobs, workers."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from jqs.auth.scopes import Scope
from jqs.logging import get_logger
from jqs.models import JobFilter, JobStatus
from jqs.port import (
    FindParams,
    ThroughputRead,
)
from jqs.ui.access import (
    api_state,
    need,
)
from jqs.ui.chart import chart
from jqs.ui.render import PREFIX, page

log = get_logger(__name__)

# The overview's throughput: the last hour, from the newest finished jobs at most.
THROUGHPUT = ThroughputRead(minutes=60, rows=20_000)
RUNNING_SHOWN = 20

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("")
async def overview(request: Request) -> Response:
    """Scope jobs:read. Throughput, queues' depth and wait, running jobs, workers."""
    visitor = need(request, Scope.JOBS_READ)
    principal = visitor.principal
    store = api_state(request).store
    minutes = await store.throughput(THROUGHPUT)
    activity = [a for a in await store.queue_activity() if principal.may_use_queue(a.name)]
    running = await store.find(
        FindParams(
            JobFilter(JobStatus.PROCESSING, queues=principal.queues, tasks=principal.tasks),
            limit=RUNNING_SHOWN,
        )
    )
    workers = await store.workers()
    return page(
        request,
        visitor,
        "overview.html",
        {
            "nav": "overview",
            "chart": chart(minutes, datetime.now(UTC), THROUGHPUT.minutes),
            "throughput": THROUGHPUT,
            "activity": activity,
            "running": running,
            "running_shown": RUNNING_SHOWN,
            "workers": workers,
        },
    )
