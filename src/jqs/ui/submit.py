"""The form that submits a job, as POST /jobs does."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from jqs.api.auth import creator
from jqs.api.options import options_from_query, task_of
from jqs.api.problems import ProblemError
from jqs.auth.scopes import Scope
from jqs.jsonutil import RawJSON
from jqs.logging import get_logger
from jqs.models import NewJob
from jqs.ui.access import (
    api_state,
    need,
    need_form,
)
from jqs.ui.render import PREFIX, back, page, read_form

log = get_logger(__name__)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/submit")
async def submit_page(request: Request) -> Response:
    """Scope jobs:submit. The form to submit a job."""
    visitor = need(request, Scope.JOBS_SUBMIT)
    return page(request, visitor, "submit.html", {"nav": "submit", "form": {}, "error": ""})


@router.post("/submit")
async def submit(request: Request) -> Response:
    """Scope jobs:submit. Queues the job, as POST /jobs does."""
    form = await read_form(request)
    visitor = need_form(request, Scope.JOBS_SUBMIT, form)
    state = api_state(request)
    principal = visitor.principal
    try:
        try:
            payload = orjson.loads(form.get("payload", ""))
        except orjson.JSONDecodeError as exc:
            raise ProblemError(422, f"the payload is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise ProblemError(422, "the payload must be a JSON object")
        given = {
            name: form[name]
            for name in ("queue", "priority", "delay", "max_attempts", "timeout")
            if form.get(name, "").strip()
        }
        options = options_from_query(given)
        try:
            task = task_of(payload)
        except ValueError as exc:
            raise ProblemError(422, f"payload.task {exc}") from None
        job = NewJob(
            RawJSON(orjson.dumps(payload)),
            options.resolve(task, state.defaults),
            creator(principal),
        )
        if not principal.may_touch(job.options.queue, task):
            raise ProblemError(403, f"API key {principal.id} may not use this queue or task")
        queue, bounds = job.options.queue, state.bounds
        # As POST /jobs: 429 when the queue is full; a bounded queue counts the job until
        # it is settled.
        settle = bounds.settle if bounds is not None and bounds.admit(queue) else None
        try:
            inserted = await state.inserts.submit(job)
        finally:
            if settle is not None:
                settle(queue)
    except ProblemError as exc:
        return page(
            request,
            visitor,
            "submit.html",
            {"nav": "submit", "form": form, "error": exc.detail},
            exc.status,
        )
    log.info("ui_job_submitted", job_id=inserted.id, key_id=principal.id)
    return back(f"{PREFIX}/jobs/{inserted.id}", f"job {inserted.id} queued")
