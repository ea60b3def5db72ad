"""/jobs: submit, fetch, list, cancel and retry jobs."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response, StreamingResponse

from jqs.api import idempotency
from jqs.api.body import read_json_object
from jqs.api.options import OPENAPI_PARAMETERS, options_from_query, task_of
from jqs.api.problems import ProblemError
from jqs.api.render import (
    PROBLEM_CONTENT_TYPE,
    JSONResponse,
    inserted_jobs,
    job_array,
    job_array_whole,
)
from jqs.api.state import ApiState, api_state
from jqs.logging import get_logger
from jqs.models import IdempotencyKey, InsertOutcome, Job, JobFilter, JobStatus, NewJob
from jqs.outcome import cancelled_result
from jqs.store.port import MAX_JOB_ID, FindParams

log = get_logger(__name__)
router = APIRouter(tags=["jobs"])
State = Annotated[ApiState, Depends(api_state)]
JobId = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="job id")]

PROBLEM: dict[str, Any] = {
    "description": "Problem details (RFC 9457)",
    "content": {PROBLEM_CONTENT_TYPE: {"schema": {"type": "object"}}},
}
_PAYLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Any JSON object: the job payload. `task` names the handler.",
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": True},
                "example": {"task": "send_email", "to": "user@example.com", "subject": "Hello"},
            }
        },
    }
}


# POST /jobs is answered by jqs.api.app before FastAPI's routing (see there why); this is
# its OpenAPI operation, added to the document FastAPI generates for the other routes.
SUBMIT_JOB_OPERATION: dict[str, Any] = {
    "tags": ["jobs"],
    "summary": "Submit a job",
    "description": "Queue a job; answered only once the job is committed.",
    "operationId": "submit_job",
    "parameters": [
        *OPENAPI_PARAMETERS,
        {
            "name": idempotency.HEADER,
            "in": "header",
            "required": False,
            "description": "same key and request: the original job (200); another request: 422",
            "schema": {"type": "string", "maxLength": idempotency.MAX_KEY_LENGTH},
        },
    ],
    **_PAYLOAD_BODY,
    "responses": {
        "201": {
            "description": "The job, queued and committed",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}},
        },
        "200": {
            "description": "Idempotency-Key replay: the job this key created",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}},
        },
        **{str(code): PROBLEM for code in (400, 413, 415, 422, 503)},
    },
}


async def submit_job(request: Request, state: ApiState) -> Response:
    """POST /jobs: queue a job; answered only once the job is committed.

    The body and the options are read by hand: the payload is stored as the client sent it,
    and most requests carry no options at all.
    """
    key = idempotency.validate_key(request.headers.get(idempotency.HEADER))
    options = options_from_query(request.query_params)
    raw, payload = await read_json_object(
        request, max_bytes=state.limits.max_body_bytes, max_depth=state.limits.max_json_depth
    )
    job = NewJob(raw, options.resolve(task_of(payload), state.defaults))
    if key is None:
        # Shares one INSERT with concurrent requests (jqs.batching); wakes local workers.
        inserted = await state.inserts.submit(job)
        body: Any = inserted_jobs([inserted], [raw], [job.options], state.waits)[0]
        job_id, task = inserted.id, inserted.task
    else:
        digest = idempotency.request_digest(payload, options.given())
        stored, outcome = await state.store.insert_once(job, IdempotencyKey(key, digest))
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
        state.on_enqueue(job.options.queue)
    # The enqueue is logged on the request's access line (one line per job, not two).
    structlog.contextvars.bind_contextvars(
        job_id=job_id, task=task, queue=job.options.queue, status=JobStatus.QUEUED.value
    )
    return JSONResponse(body, status_code=201, headers={"Location": f"/jobs/{job_id}"})


@router.get(
    "/jobs/{job_id}",
    operation_id="get_job",
    summary="Get a job's status and result",
    response_model=Job,
    responses={404: PROBLEM, 422: PROBLEM, 503: PROBLEM},
)
async def get_job(state: State, job_id: JobId) -> Response:
    """One job with its current status and result."""
    return JSONResponse(state.shown(await state.store.get(job_id)))


@router.get(
    "/jobs",
    operation_id="list_jobs",
    summary="List jobs, newest first",
    response_model=list[Job],
    responses={422: PROBLEM, 503: PROBLEM},
)
async def list_jobs(
    state: State,
    page: Annotated[
        int,
        Query(
            ge=1,
            le=2**31 - 1,
            description="1-based page number; with `before_id`, pages of the jobs below it",
        ),
    ] = 1,
    limit: Annotated[
        int, Query(ge=1, description="page size; values above the maximum (100) are capped")
    ] = 10,
    status: Annotated[JobStatus | None, Query(description="only jobs in this status")] = None,
    task: Annotated[
        str | None, Query(min_length=1, max_length=200, description="only this payload.task")
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
    limit = min(limit, state.limits.page_size_max)
    params = FindParams(
        JobFilter(status=status, task=task),
        limit=limit,
        offset=(page - 1) * limit,
        before_id=before_id,
    )
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
    "/jobs/{job_id}/cancel",
    operation_id="cancel_job",
    summary="Cancel a job",
    response_model=Job,
    responses={
        202: {"description": "running: its worker will stop it shortly", "model": Job},
        404: PROBLEM,
        409: PROBLEM,
        422: PROBLEM,
        503: PROBLEM,
    },
)
async def cancel_job(state: State, job_id: JobId) -> Response:
    """A queued job ends `cancelled` at once (200); a running one is interrupted by its
    worker within about a second (202, then `cancelled`); a finished one is a 409."""
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
    "/jobs/{job_id}/retry",
    operation_id="retry_job",
    summary="Run a failed or cancelled job again",
    response_model=Job,
    responses={404: PROBLEM, 409: PROBLEM, 422: PROBLEM, 503: PROBLEM},
)
async def retry_job(state: State, job_id: JobId) -> Response:
    """Put a failed or cancelled job back to `queued` with a fresh set of attempts."""
    change = await state.store.retry(job_id)
    job = change.job
    if not change.changed:
        raise ProblemError(
            409, f"job {job.id} is {job.status.value}; only failed or cancelled jobs can be retried"
        )
    state.on_enqueue(job.queue)
    log.info("job_retried", job_id=job.id, task=job.task, status=job.status.value)
    return JSONResponse(state.shown(job))
