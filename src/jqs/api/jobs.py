"""/jobs: submit, fetch and list jobs (the seed's contract)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from jqs.api.body import read_json_object
from jqs.api.responses import PROBLEM_CONTENT_TYPE, JSONBytesResponse
from jqs.api.schemas import JobOut, job_to_json
from jqs.api.state import ApiState, api_state
from jqs.logging import get_logger
from jqs.models import JobFilter, JobStatus
from jqs.store import MAX_JOB_ID

log = get_logger(__name__)
router = APIRouter(tags=["jobs"])
State = Annotated[ApiState, Depends(api_state)]

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
    responses={400: _PROBLEM, 413: _PROBLEM, 415: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM},
    openapi_extra=_PAYLOAD_BODY,
)
async def submit_job(request: Request, state: State) -> Response:
    """Queue a job; answered only once the job is committed."""
    payload = await read_json_object(
        request,
        max_bytes=state.limits.max_body_bytes,
        max_depth=state.limits.max_json_depth,
    )
    job = await state.jobs.insert(payload)
    state.on_enqueue()
    log.info("job_enqueued", job_id=job.id, task=job.task, queue=job.queue, status=job.status.value)
    return JSONBytesResponse(
        job_to_json(job), status_code=201, headers={"Location": f"/jobs/{job.id}"}
    )


@router.get(
    "/jobs/{job_id}",
    operation_id="get_job",
    summary="Get a job's status and result",
    response_model=JobOut,
    responses={404: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM},
)
async def get_job(
    state: State, job_id: Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="job id")]
) -> Response:
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
