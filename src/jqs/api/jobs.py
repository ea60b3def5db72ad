"""/jobs: submit, fetch and list jobs (the seed's contract)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from jqs.api import idempotency
from jqs.api.body import read_json_object
from jqs.api.options import OPENAPI_PARAMETERS, options_from_query, task_of
from jqs.api.problems import ProblemError
from jqs.api.responses import PROBLEM_CONTENT_TYPE, JSONBytesResponse
from jqs.api.schemas import JobOut, job_to_json, new_job_json
from jqs.api.state import ApiState, api_state
from jqs.logging import bind_fields, get_logger
from jqs.models import InsertOutcome, JobFilter, JobStatus
from jqs.outcome import cancelled_result
from jqs.store import MAX_JOB_ID

log = get_logger(__name__)
router = APIRouter(tags=["jobs"])
State = Annotated[ApiState, Depends(api_state)]
JobId = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="job id")]

_PROBLEM: dict[str, Any] = {
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


@router.post(
    "/jobs",
    status_code=201,
    operation_id="submit_job",
    summary="Submit a job",
    response_model=JobOut,
    responses={
        200: {"description": "Idempotency-Key replay: the job this key created", "model": JobOut},
        400: _PROBLEM,
        413: _PROBLEM,
        415: _PROBLEM,
        422: _PROBLEM,
        503: _PROBLEM,
    },
    openapi_extra={
        **_PAYLOAD_BODY,
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
    },
)
async def submit_job(request: Request) -> Response:
    """Queue a job; answered only once the job is committed."""
    return await submit(request, request.app.state.jqs)


async def submit(request: Request, state: ApiState) -> Response:
    """POST /jobs itself; also called directly by jqs.api.app's fast path."""
    key = idempotency.validate_key(request.headers.get(idempotency.HEADER))
    options = options_from_query(request.query_params)
    raw, payload = await read_json_object(
        request,
        max_bytes=state.limits.max_body_bytes,
        max_depth=state.limits.max_json_depth,
    )
    digest = idempotency.request_digest(payload, options.given()) if key is not None else None
    resolved = options.resolve(
        task_of(payload), state.defaults, idempotency_key=key, request_digest=digest
    )
    if key is None:
        # The common case: shares one INSERT with concurrent requests (jqs.batching).
        new = await state.inserts.submit((raw, resolved))  # wakes the local workers too
        body = new_job_json(new, raw, resolved)
        job_id, task = new.id, new.task
    else:
        job, outcome = await state.jobs.insert(raw, resolved)
        if outcome is InsertOutcome.CONFLICT:
            raise ProblemError(
                422,
                f"{idempotency.HEADER} {key!r} was already used for another request "
                f"(job {job.id}); use a new key for a new job",
                job_id=job.id,
            )
        if outcome is InsertOutcome.DUPLICATE:
            return JSONBytesResponse(
                job_to_json(job),
                status_code=200,
                headers={"Location": f"/jobs/{job.id}", "Idempotent-Replayed": "true"},
            )
        body = job_to_json(job)
        job_id, task = job.id, job.task
        state.on_enqueue(resolved.queue)
    # The enqueue is logged on the request's access line (one line per job, not two).
    bind_fields(job_id=job_id, task=task, queue=resolved.queue, status="queued")
    return JSONBytesResponse(body, status_code=201, headers={"Location": f"/jobs/{job_id}"})


@router.get(
    "/jobs/{job_id}",
    operation_id="get_job",
    summary="Get a job's status and result",
    response_model=JobOut,
    responses={404: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM},
)
async def get_job(state: State, job_id: JobId) -> Response:
    """One job with its current status and result."""
    job = await state.jobs.get(job_id)
    return JSONBytesResponse(job_to_json(job))


@router.get(
    "/jobs",
    operation_id="list_jobs",
    summary="List jobs, newest first",
    response_model=list[JobOut],
    responses={422: _PROBLEM, 503: _PROBLEM},
)
async def list_jobs(
    state: State,
    page: Annotated[int, Query(ge=1, le=2**31 - 1, description="1-based page number")] = 1,
    limit: Annotated[
        int, Query(ge=1, description="page size; values above the maximum (100) are capped")
    ] = 10,
    status: Annotated[JobStatus | None, Query(description="only jobs in this status")] = None,
    task: Annotated[
        str | None, Query(min_length=1, max_length=200, description="only this payload.task")
    ] = None,
) -> Response:
    """A JSON array of jobs, newest (highest id) first."""
    limit = min(limit, state.limits.page_size_max)
    jobs = await state.jobs.find(
        JobFilter(status=status, task=task), limit=limit, offset=(page - 1) * limit
    )
    return JSONBytesResponse([job_to_json(job) for job in jobs])


@router.post(
    "/jobs/{job_id}/cancel",
    operation_id="cancel_job",
    summary="Cancel a job",
    response_model=JobOut,
    responses={
        202: {"description": "running: its worker will stop it shortly", "model": JobOut},
        404: _PROBLEM,
        409: _PROBLEM,
        422: _PROBLEM,
        503: _PROBLEM,
    },
)
async def cancel_job(state: State, job_id: JobId) -> Response:
    """A queued job ends `cancelled` at once (200); a running one is interrupted by its
    worker within about a second (202, then `cancelled`); a finished one is a 409."""
    job, changed = await state.jobs.cancel(job_id, cancelled_result(attempt=0))
    if not changed:
        raise ProblemError(409, f"job {job.id} is already {job.status.value}; nothing to cancel")
    if job.status is JobStatus.PROCESSING:
        log.info("job_cancel_requested", job_id=job.id, task=job.task, status=job.status.value)
        return JSONBytesResponse(job_to_json(job), status_code=202)
    log.info("job_cancelled", job_id=job.id, task=job.task, status=job.status.value)
    return JSONBytesResponse(job_to_json(job))


@router.post(
    "/jobs/{job_id}/retry",
    operation_id="retry_job",
    summary="Run a failed or cancelled job again",
    response_model=JobOut,
    responses={404: _PROBLEM, 409: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM},
)
async def retry_job(state: State, job_id: JobId) -> Response:
    """Put a failed or cancelled job back to `queued` with a fresh set of attempts."""
    job, changed = await state.jobs.retry(job_id)
    if not changed:
        raise ProblemError(
            409, f"job {job.id} is {job.status.value}; only failed or cancelled jobs can be retried"
        )
    state.on_enqueue(job.queue)
    log.info("job_retried", job_id=job.id, task=job.task, status=job.status.value)
    return JSONBytesResponse(job_to_json(job))
