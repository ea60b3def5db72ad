"""The jobs pages: search, retry / cancel every match, one job and its actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from jqs.auth.scopes import Scope
from jqs.errors import JobNotFound
from jqs.logging import get_logger
from jqs.models import Job, JobFilter, JobStatus
from jqs.outcome import cancelled_result
from jqs.port import (
    MAX_JOB_ID,
    FindParams,
    JobEventsRead,
    SearchParams,
)
from jqs.ui.access import (
    Refused,
    api_state,
    need,
    need_form,
)
from jqs.ui.filters import PAGE_SIZE, WINDOW_IDS, FilterError, Filters
from jqs.ui.render import PREFIX, back, page, read_form
from jqs.ui.session import Session

log = get_logger(__name__)

# "Retry / cancel all": jobs taken per statement, and acted on per click at most.
BULK_BATCH = 200
BULK_MAX = 10_000

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _int(value: str | None) -> int | None:
    """A job id from the query string or a form: None unless a number; within bigint."""
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return None if number is None else max(0, min(number, MAX_JOB_ID))


@router.get("/jobs")
async def jobs_page(request: Request) -> Response:
    """Scope jobs:read. Jobs by filter, newest first, a page at a time."""
    visitor = need(request, Scope.JOBS_READ)
    store = api_state(request).store
    filters = Filters.of(request.query_params)
    before = _int(request.query_params.get("before"))
    context: dict[str, Any] = {
        "nav": "jobs",
        "filters": filters,
        "statuses": [s.value for s in JobStatus],
        "jobs": [],
        "error": "",
        "window": None,
        "next_query": "",
        "older_query": "",
        "window_ids": WINDOW_IDS,
    }
    try:
        search = filters.search(visitor.principal)
    except FilterError as exc:
        context["error"] = str(exc)
        return page(request, visitor, "jobs.html", context, 422)
    if filters.windowed:
        top = _int(request.query_params.get("top")) or await store.job_newest_id() + 1
        floor = max(0, top - 1 - WINDOW_IDS)
        found = await store.job_search(SearchParams(search, floor, before or top, PAGE_SIZE + 1))
        edge = await store.job_search_count(SearchParams(type(search)(), floor, top))
        context["window"] = {"top": top, "floor": floor, "oldest_at": edge.oldest_at}
        if floor > 0:
            context["older_query"] = filters.query(top=floor + 1)
        extra: dict[str, object] = {"top": top}
    else:
        found = await store.find(
            FindParams(
                JobFilter(
                    search.status, search.task, visitor.principal.queues, visitor.principal.tasks
                ),
                limit=PAGE_SIZE + 1,
                before_id=before,
            )
        )
        extra = {}
    if len(found) > PAGE_SIZE:
        found = found[:PAGE_SIZE]
        context["next_query"] = filters.query(before=found[-1].id, **extra)
    context["jobs"] = found
    context["query"] = filters.query(**extra)
    return page(request, visitor, "jobs.html", context)


def _window(top_text: str | None, floor_text: str | None, newest: int) -> tuple[int, int]:
    """The ids (floor, top) a bulk action covers: the newest WINDOW_IDS below `top`, or from
    `floor` when an action left some of its window for another press."""
    top = _int(top_text) or newest + 1
    floor = _int(floor_text)
    if floor is None or not top - 1 - WINDOW_IDS <= floor < top:
        floor = max(0, top - 1 - WINDOW_IDS)
    return floor, top


@router.get("/jobs/bulk")
async def bulk_page(request: Request) -> Response:
    """Scope jobs:manage. How many jobs an action on every match would touch, to confirm."""
    visitor = need(request, Scope.JOBS_MANAGE)
    store = api_state(request).store
    filters = Filters.of(request.query_params)
    action = request.query_params.get("action", "")
    if action not in ("cancel", "retry"):
        raise Refused(404, "no such action")
    try:
        search = filters.search(visitor.principal)
    except FilterError as exc:
        return back(f"{PREFIX}/jobs?{filters.query()}", str(exc))
    asked = request.query_params
    floor, top = _window(asked.get("top"), asked.get("floor"), await store.job_newest_id())
    count = await store.job_search_count(SearchParams(search, floor, top))
    return page(
        request,
        visitor,
        "bulk.html",
        {
            "nav": "jobs",
            "action": action,
            "filters": filters,
            "count": count,
            "floor": floor,
            "top": top,
            "bulk_max": BULK_MAX,
            "window_ids": WINDOW_IDS,
        },
    )


@router.post("/jobs/bulk")
async def bulk(request: Request) -> Response:
    """Scope jobs:manage. Cancel or retry every match of the confirmed window, in batches."""
    form = await read_form(request)
    visitor = need_form(request, Scope.JOBS_MANAGE, form)
    store = api_state(request).store
    filters = Filters.of(form)
    action = form.get("action", "")
    floor, top = _int(form.get("floor")) or 0, _int(form.get("top")) or 0
    if action not in ("cancel", "retry") or top <= floor:
        raise Refused(422, "the form names no action or window; start from the jobs page")
    try:
        search = filters.search(visitor.principal)
    except FilterError as exc:
        return back(f"{PREFIX}/jobs?{filters.query()}", str(exc))
    state = api_state(request)
    changed = unchanged = 0
    cursor = top
    done = False
    while changed + unchanged < BULK_MAX and not done:
        size = min(BULK_BATCH, BULK_MAX - changed - unchanged)
        batch = await store.job_search(SearchParams(search, floor, cursor, size))
        done = len(batch) < size
        if not batch:
            break
        ids = [job.id for job in batch]
        if action == "cancel":
            moved = await store.cancel_many(ids, cancelled_result(attempt=0))
        else:
            moved = await store.retry_many(ids)
            for queue in {each.queue for each in moved}:
                state.on_enqueue(queue)
        changed += len(moved)
        unchanged += len(batch) - len(moved)
        cursor = batch[-1].id
    log.info(
        "ui_bulk", action=action, changed=changed, unchanged=unchanged, key_id=visitor.principal.id
    )
    verb = "cancelled or asked to stop" if action == "cancel" else "queued again"
    message = f"{changed} jobs {verb}; {unchanged} left as they were"
    if not done:
        # The rest of the window, counted again, for the next press.
        message += f"; stopped after {BULK_MAX:,} jobs: the rest are below"
        rest = filters.query(action=action, floor=floor, top=cursor)
        return back(f"{PREFIX}/jobs/bulk?{rest}", message)
    return back(f"{PREFIX}/jobs?{filters.query()}", message)


async def _reachable(request: Request, visitor: Session, job_id: int) -> Job:
    try:
        job = await api_state(request).store.get(job_id)
    except JobNotFound:
        raise Refused(404, f"no job has the id {job_id}") from None
    if not visitor.principal.may_touch(job.queue, job.task):
        raise Refused(404, f"no job has the id {job_id}")
    return job


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: int) -> Response:
    """Scope jobs:read. One job: payload, result, progress, errors, events."""
    visitor = need(request, Scope.JOBS_READ)
    state = api_state(request)
    job = state.shown(await _reachable(request, visitor, job_id))
    events = await state.store.events_of_job(JobEventsRead(job_id))
    return page(request, visitor, "job.html", {"nav": "jobs", "job": job, "events": events})


@router.post("/jobs/{job_id}/cancel")
async def job_cancel(request: Request, job_id: int) -> Response:
    """Scope jobs:manage."""
    visitor = need_form(request, Scope.JOBS_MANAGE, await read_form(request))
    await _reachable(request, visitor, job_id)
    change = await api_state(request).store.cancel(job_id, cancelled_result(attempt=0))
    job = change.job
    if not change.changed:
        message = f"job {job_id} is {job.status.value}: nothing to cancel"
    elif job.status is JobStatus.PROCESSING:
        message = f"job {job_id}: its worker was asked to stop it"
    else:
        message = f"job {job_id} cancelled"
    log.info("ui_job_cancel", job_id=job_id, changed=change.changed, key_id=visitor.principal.id)
    return back(f"{PREFIX}/jobs/{job_id}", message)


@router.post("/jobs/{job_id}/retry")
async def job_retry(request: Request, job_id: int) -> Response:
    """Scope jobs:manage."""
    visitor = need_form(request, Scope.JOBS_MANAGE, await read_form(request))
    await _reachable(request, visitor, job_id)
    state = api_state(request)
    change = await state.store.retry(job_id)
    if change.changed:
        state.on_enqueue(change.job.queue)
        message = f"job {job_id} queued again"
    else:
        message = f"job {job_id} is {change.job.status.value}: only failed or cancelled jobs retry"
    log.info("ui_job_retry", job_id=job_id, changed=change.changed, key_id=visitor.principal.id)
    return back(f"{PREFIX}/jobs/{job_id}", message)
