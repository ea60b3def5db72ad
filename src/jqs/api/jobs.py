"""/jobs: submit, fetch, list, cancel and retry jobs."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.responses import Response, StreamingResponse

from jqs.api import idempotency, webhooks
from jqs.api.auth import (
    ManageKey,
    ReadKey,
    creator,
    principal_of,
    require,
    require_queue,
    require_task,
    scope_doc,
)
from jqs.api.body import read_json_object
from jqs.api.openapi import PAYLOAD_SCHEMA, problem_response, problem_responses
from jqs.api.options import (
    MAX_TASK_LENGTH,
    OPENAPI_PARAMETERS,
    JobOptions,
    options_from_query,
    task_of,
)
from jqs.api.problems import ProblemError
from jqs.api.render import JSONResponse, inserted_jobs, job_array, job_array_whole
from jqs.api.state import ApiState, Limits, api_state
from jqs.api.waiting import WAIT_PARAMETER, Wait, job_after_wait, parse_wait
from jqs.auth.principal import Principal
from jqs.auth.scopes import Scope
from jqs.errors import JobNotFound
from jqs.events.feed import EndsSeen
from jqs.logging import get_logger
from jqs.models import (
    IdempotencyKey,
    InsertOutcome,
    Job,
    JobFilter,
    JobStatus,
    JSONObject,
    NewJob,
)
from jqs.outcome import cancelled_result
from jqs.port import MAX_JOB_ID, FindParams

log = get_logger(__name__)
router = APIRouter(tags=["jobs"])
State = Annotated[ApiState, Depends(api_state)]
JobId = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="job id")]


class _JobIdSegment(StringConvertor):
    """A path segment taken for a job id: any but `batch`, so that another method on
    /jobs/batch is a 405 while a malformed id such as /jobs/abc still gets a 422 that says
    what is wrong with it."""

    regex = r"(?!batch(?:/|$))[^/]+"


register_url_convertor("job_id", _JobIdSegment())
JOB_PATH = "/jobs/{job_id:job_id}"
JOB_REF = "#/components/schemas/Job"
_LOCATION = {"description": "the job's URL", "schema": {"type": "string"}}

# Submitting answers 429 for either of two reasons.
TOO_MANY: dict[str, Any] = {
    **problem_response(
        429,
        "The queue holds its max_queued queued jobs, or the API key is past its rate limit; "
        "retry after Retry-After seconds",
    ),
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
}


def submit_job_operation(limits: Limits) -> dict[str, Any]:
    """POST /jobs's OpenAPI operation, with the limits this server runs with.

    POST /jobs is answered by jqs.api.app before FastAPI's routing (see there why); this is
    added to the document FastAPI generates for the other routes.
    """
    return {
        "tags": ["jobs"],
        "summary": "Submit a job",
        "description": "Queue a job; answered only once the job is committed. With `wait`, "
        "answered once the job has finished, or when the wait runs out, with the job as it "
        "stands then.",
        "operationId": "submit_job",
        "parameters": [
            *OPENAPI_PARAMETERS,
            WAIT_PARAMETER,
            {
                "name": idempotency.HEADER,
                "in": "header",
                "required": False,
                "description": "same key and request: the original job (200); another "
                "request: 422. Printable ASCII.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": idempotency.MAX_KEY_LENGTH,
                    "pattern": idempotency.KEY_PATTERN,
                },
            },
        ],
        "requestBody": {
            "required": True,
            "description": "Any JSON object: the job payload. `task` names the handler. "
            f"At most {limits.max_body_bytes} bytes (413 beyond) and "
            f"{limits.max_json_depth} levels deep; no string in it may hold NUL (\\u0000).",
            "content": {
                "application/json": {
                    "schema": PAYLOAD_SCHEMA,
                    "example": {"task": "send_email", "to": "user@example.com", "subject": "Hello"},
                }
            },
        },
        "responses": {
            "201": {
                "description": "The job, queued and committed",
                "headers": {"Location": _LOCATION},
                "content": {"application/json": {"schema": {"$ref": JOB_REF}}},
            },
            "200": {
                "description": "Idempotency-Key replay: the job this key created",
                "headers": {
                    "Location": _LOCATION,
                    "Idempotent-Replayed": {
                        "description": "the job was created by an earlier request",
                        "schema": {"type": "string", "enum": ["true"]},
                    },
                },
                "content": {"application/json": {"schema": {"$ref": JOB_REF}}},
            },
            **{str(code): problem_response(code) for code in (400, 413, 415, 422, 503)},
            "429": TOO_MANY,
        },
        **scope_doc(Scope.JOBS_SUBMIT),
    }


def document_limits(document: dict[str, Any], limits: Limits) -> None:
    """Write this server's limits into the routes' operations in `document`."""
    for parameter in document["paths"]["/jobs"]["get"]["parameters"]:
        if parameter["name"] == "limit":
            most = limits.page_size_max
            parameter["description"] = f"page size; values above {most} are taken as {most}"


async def submit_job(request: Request, state: ApiState) -> Response:
    """POST /jobs: queue a job; answered only once the job is committed.

    The body and the options are read by hand: the payload is stored as the client sent it,
    and most requests carry no options at all.
    """
    principal = require(principal_of(request), Scope.JOBS_SUBMIT)
    key = idempotency.validate_key(request.headers.get(idempotency.HEADER))
    query: Any = request.query_params
    wait = None
    if "wait" in query:
        wait = parse_wait(query["wait"])
        query = {name: value for name, value in query.items() if name != "wait"}
    options = options_from_query(query)
    raw, payload = await read_json_object(
        request, max_bytes=state.limits.max_body_bytes, max_depth=state.limits.max_json_depth
    )
    try:
        handler = task_of(payload)
    except ValueError as exc:
        raise ProblemError(422, f"payload.task {exc}") from None
    job = NewJob(raw, options.resolve(handler, state.defaults), creator(principal))
    if principal.restricted:
        require_queue(principal, job.options.queue)
        require_task(principal, handler)
    callback = job.options.callback_url
    if callback is not None:
        await webhooks.check_callbacks(state, principal, {callback})
    # With `wait`, the ends reported while the job is written are recorded: when none is
    # its own, the wait needs no read of the job first (jqs.api.waiting).
    seen = None if wait is None else state.events().recording()
    try:
        if state.tracing.enabled:
            response = await _traced_submit(request, state, job, key, payload, options, handler)
        else:
            response = await _submit(state, job, key, payload, options)
        if wait is None:
            return response
        return await _waited(state, response, wait, seen)
    finally:
        if seen is not None:
            seen.stop()


async def _waited(
    state: ApiState, submitted: Response, wait: float, seen: EndsSeen | None
) -> Response:
    """The answer to a submission with `?wait`: its job once finished, or as it stands when
    the wait runs out; the status code and headers stay those of the submission. A replayed
    submission's job is read first, as any other that this request did not just write."""
    located = submitted.headers["Location"]
    if "Idempotent-Replayed" in submitted.headers:
        seen = None
    job = await job_after_wait(state, int(located.rsplit("/", 1)[-1]), wait, seen)
    headers = {"Location": located}
    if "Idempotent-Replayed" in submitted.headers:
        headers["Idempotent-Replayed"] = submitted.headers["Idempotent-Replayed"]
    return JSONResponse(state.shown(job), status_code=submitted.status_code, headers=headers)


async def _traced_submit(
    request: Request,
    state: ApiState,
    job: NewJob,
    key: str | None,
    payload: JSONObject,
    options: JobOptions,
    task: str | None,
) -> Response:
    """_submit within the submission's span, whose traceparent the job keeps."""
    span = state.tracing.send(request.headers, job.options.queue, task)
    if span is None:
        return await _submit(state, job, key, payload, options)
    try:
        response = await _submit(
            state, replace(job, trace_context=span.traceparent), key, payload, options
        )
    except BaseException as exc:
        span.end(error=exc)
        raise
    located = response.headers.get("Location", "")
    span.end([int(located.rsplit("/", 1)[-1])] if located else None)
    return response


async def _submit(
    state: ApiState,
    job: NewJob,
    key: str | None,
    payload: JSONObject,
    options: JobOptions,
) -> Response:
    """Insert a validated, authorized job and answer for it."""
    queue, bounds = job.options.queue, state.bounds
    # 429 when the queue is full. A bounded queue counts the job until it is settled.
    settle = bounds.settle if bounds is not None and bounds.admit(queue) else None
    if key is None:
        # Shares one INSERT with concurrent requests (jqs.batching); wakes local workers.
        try:
            inserted = await state.inserts.submit(job)
        finally:
            if settle is not None:
                settle(queue)
        body: Any = inserted_jobs(
            [inserted], [job.payload], [job.options], state.waits, job.created_by
        )[0]
        job_id, task = inserted.id, inserted.task
    else:
        digest = idempotency.request_digest(payload, options.given())
        try:
            stored, outcome = await state.store.insert_once(
                job, IdempotencyKey(idempotency.scoped(key, job.created_by), digest)
            )
        finally:
            if settle is not None:
                settle(queue)
        if outcome is InsertOutcome.CONFLICT:
            raise ProblemError(
                422,
                f"{idempotency.HEADER} {key!r} was already used for another request "
                f"(job {stored.id}); use a new key for a new job",
                job_id=stored.id,
            )
        if outcome is InsertOutcome.DUPLICATE:
            return JSONResponse(
                state.shown(stored),
                status_code=200,
                headers={"Location": f"/jobs/{stored.id}", "Idempotent-Replayed": "true"},
            )
        body, job_id, task = state.shown(stored), stored.id, stored.task
        state.metrics.enqueued(queue, task)
        state.on_enqueue(queue)
    if job.options.callback_url is not None and state.webhooks is not None:
        state.webhooks.on_new()
    # The enqueue is logged on the request's access line (one line per job, not two).
    structlog.contextvars.bind_contextvars(
        job_id=job_id, task=task, queue=queue, status=JobStatus.QUEUED.value
    )
    return JSONResponse(body, status_code=201, headers={"Location": f"/jobs/{job_id}"})


async def reachable(state: ApiState, principal: Principal, job_id: int) -> Job | None:
    """The job, for a key limited to some queues or tasks; 404 if outside them.

    A job out of a key's reach is not found, not forbidden: the key learns nothing of it.
    None for an unrestricted key, which needs no look before the action.
    """
    if not principal.restricted:
        return None
    job = await state.store.get(job_id)
    if not principal.may_touch(job.queue, job.task):
        raise JobNotFound(job_id)
    return job


@router.get(
    JOB_PATH,
    operation_id="get_job",
    summary="Get a job's status and result",
    response_model=Job,
    responses=problem_responses(404, 422, 503),
    openapi_extra=scope_doc(Scope.JOBS_READ),
)
async def get_job(state: State, principal: ReadKey, job_id: JobId, wait: Wait = None) -> Response:
    """One job with its current status and result; with `wait`, once it has finished or
    the wait has run out (200 either way: the status says which)."""
    job = await reachable(state, principal, job_id)
    if wait is not None:
        job = await job_after_wait(state, job_id, wait)
    elif job is None:
        job = await state.store.get(job_id)
    return JSONResponse(state.shown(job))


@router.get(
    "/jobs",
    operation_id="list_jobs",
    summary="List jobs, newest first",
    response_model=list[Job],
    responses=problem_responses(422, 503),
    openapi_extra=scope_doc(Scope.JOBS_READ),
)
async def list_jobs(
    state: State,
    principal: ReadKey,
    page: Annotated[
        int,
        Query(
            ge=1,
            le=2**31 - 1,
            description="1-based page number; with `before_id`, pages of the jobs below it",
        ),
    ] = 1,
    limit: Annotated[
        int, Query(ge=1, description="page size; values above the maximum are taken as the maximum")
    ] = 10,
    status: Annotated[JobStatus | None, Query(description="only jobs in this status")] = None,
    task: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_TASK_LENGTH, description="only this payload.task"),
    ] = None,
    before_id: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_JOB_ID,
            description="only jobs whose id is lower (a cursor: pass the last id of a page "
            "to get the next one, however many jobs come and go meanwhile)",
        ),
    ] = None,
) -> Response:
    """A JSON array of jobs, newest (highest id) first, sent as it is read."""
    if task is not None and "\x00" in task:
        # PostgreSQL text cannot hold NUL: no job's task can contain one.
        raise ProblemError(
            422, "query.task: may not contain NUL (%00); give the task's name as it was sent"
        )
    limit = min(limit, state.limits.page_size_max)
    if task is not None:
        require_task(principal, task)
    within = JobFilter(status=status, task=task, queues=principal.queues, tasks=principal.tasks)
    params = FindParams(within, limit=limit, offset=(page - 1) * limit, before_id=before_id)
    chunks = state.store.find_text(params)
    # Read before the answer starts, so that a store error is still a problem answer. A page
    # that comes in one chunk (most do: small jobs) is answered whole; the others stream.
    first = await anext(chunks, None)
    second = None if first is None else await anext(chunks, None)
    if second is None:
        return JSONResponse(job_array_whole(first or [], state.waits))
    assert first is not None
    return StreamingResponse(
        job_array([first, second], chunks, state.waits), media_type="application/json"
    )


@router.post(
    f"{JOB_PATH}/cancel",
    operation_id="cancel_job",
    summary="Cancel a job",
    response_model=Job,
    responses={
        202: {"description": "running: its worker will stop it shortly", "model": Job},
        **problem_responses(404, 409, 422, 503),
    },
    openapi_extra=scope_doc(Scope.JOBS_MANAGE),
)
async def cancel_job(state: State, principal: ManageKey, job_id: JobId) -> Response:
    """A queued job ends `cancelled` at once (200); a running one is interrupted by its
    worker within about a second (202, then `cancelled`); a finished one is a 409."""
    await reachable(state, principal, job_id)
    change = await state.store.cancel(job_id, cancelled_result(attempt=0))
    job = change.job
    if not change.changed:
        raise ProblemError(409, f"job {job.id} is already {job.status.value}; nothing to cancel")
    if job.status is JobStatus.PROCESSING:
        log.info("job_cancel_requested", job_id=job.id, task=job.task, status=job.status.value)
        return JSONResponse(job, status_code=202)
    log.info("job_cancelled", job_id=job.id, task=job.task, status=job.status.value)
    return JSONResponse(job)


@router.post(
    f"{JOB_PATH}/retry",
    operation_id="retry_job",
    summary="Run a failed or cancelled job again",
    response_model=Job,
    responses=problem_responses(404, 409, 422, 503),
    openapi_extra=scope_doc(Scope.JOBS_MANAGE),
)
async def retry_job(state: State, principal: ManageKey, job_id: JobId) -> Response:
    """Put a failed or cancelled job back to `queued` with a fresh set of attempts."""
    await reachable(state, principal, job_id)
    change = await state.store.retry(job_id)
    job = change.job
    if not change.changed:
        raise ProblemError(
            409, f"job {job.id} is {job.status.value}; only failed or cancelled jobs can be retried"
        )
    state.on_enqueue(job.queue)
    log.info("job_retried", job_id=job.id, task=job.task, status=job.status.value)
    return JSONResponse(state.shown(job))
