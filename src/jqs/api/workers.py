"""The HTTP worker protocol, version 1 (under /v1), and the list of live workers.

A worker in any language claims jobs (`POST /v1/workers/claim`, long-polling), keeps their
leases (`POST /v1/jobs/{id}/heartbeat`, or many at once with `POST /v1/workers/leases`), may
report progress, and reports each attempt's end (`complete`, `fail`, or many at once with
`POST /v1/workers/outcomes`); a worker that stops hands back the jobs it will not run
(`POST /v1/workers/release`) and may say it is gone (`POST /v1/workers/{id}/gone`). Every write that
touches a job presents the lease token its claim gave: a token that no longer holds gets
409 and changes nothing. Routes need the `worker` scope; a key limited to some queues or
tasks claims only within them. `GET /workers` lists every live worker, in-process or not.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema
from starlette.responses import Response

from jqs.api.auth import ReadKey, WorkerKey, require_queue, require_task, scope_doc
from jqs.api.body import read_json_object
from jqs.api.departure import departure
from jqs.api.jobs import JOB_PATH, JobId
from jqs.api.openapi import (
    PAYLOAD_SCHEMA,
    STORABLE_REF,
    json_body,
    problem_response,
    problem_responses,
)
from jqs.api.options import MAX_TASK_LENGTH, describe
from jqs.api.problems import ProblemError
from jqs.api.queues import WHOLE
from jqs.api.render import JSONResponse
from jqs.api.state import ApiState, Limits, api_state
from jqs.auth.principal import Principal
from jqs.auth.scopes import Scope
from jqs.models import ClaimedJob, Lease, Progress, WorkerInfo
from jqs.outcome import encode_result
from jqs.port import LeaseCheckParams, WorkerBeat
from jqs.remote import RemoteWorkers
from jqs.remote.ends import Report, ReportedError, Verdict, Written
from jqs.remote.hub import ClaimAsk
from jqs.tasks.names import QUEUE_NAME

PREFIX = "/v1"
router = APIRouter(tags=["workers"])
State = Annotated[ApiState, Depends(api_state)]

MAX_JOBS = 100  # jobs one claim may take
MAX_WAIT = 30.0  # seconds one claim may wait
LEASE_MIN, LEASE_MAX = 1.0, 3600.0
RETRY_IN_MAX = 30 * 86_400.0
MAX_OUTCOMES = 1000  # outcomes in one POST /v1/workers/outcomes
MAX_LEASES = 1000  # leases in one POST /v1/workers/leases or /v1/workers/release
SMALL_BODY = 16_384  # claims, heartbeats
LEASES_BODY = 131_072  # MAX_LEASES leases, with room for spaces
# A result may be as large as a job's payload (JQS_MAX_BODY_BYTES), with room around it;
# the document states the server's own (document_limits).
_END_BYTES = Limits().max_body_bytes + SMALL_BODY
_OUTCOMES_BYTES = Limits().batch_max_bytes
_NO_NUL = r"^[^\x00]*$"
_NAME = r"^[^\x00-\x1f\x7f]+$"  # printable: ids and hosts appear in logs

LEASE_LOST = (
    "the lease does not hold: the job is not running under this token (its lease expired "
    "and the job went back to the queue or to another worker, it ended, or the token is "
    "wrong); nothing was changed. Drop the job."
)
FORBIDDEN = "the job's queue or task is outside what this API key may use"

# JSON that JSONB can store: no NUL (U+0000) in any string (the body is checked so: 422).
# (Marked here, the schemas filled in by _components: pydantic would chase their $ref.)
_STORABLE, _STORABLE_OBJECT = {"x-jqs": "storable"}, {"x-jqs": "storable-object"}
_FILLED: dict[str, dict[str, Any]] = {
    "storable": {"$ref": STORABLE_REF},
    "storable-object": {"anyOf": [PAYLOAD_SCHEMA, {"type": "null"}]},
}
Storable = Annotated[Any, WithJsonSchema(_STORABLE)]
StorableObject = Annotated[dict[str, Any] | None, WithJsonSchema(_STORABLE_OBJECT)]
LeaseToken = Annotated[
    uuid.UUID, Field(strict=False, description="the lease token the job's claim gave")
]
QueueName = Annotated[str, Field(pattern=QUEUE_NAME.pattern)]
TaskName = Annotated[str, Field(max_length=MAX_TASK_LENGTH, pattern=_NO_NUL)]
WorkerId = Annotated[
    str, Path(min_length=1, max_length=200, pattern=_NAME, description="the worker's id")
]


class _Body(BaseModel):
    # Strict: "yes" is not a boolean, true is not a number, "4" is not an integer.
    model_config = ConfigDict(extra="forbid", strict=True)


class WorkerIdentity(_Body):
    """Who is asking: an id unique per worker process, its host and its version."""

    id: str = Field(min_length=1, max_length=200, pattern=_NAME)
    host: str = Field(default="", max_length=255, pattern=_NO_NUL)
    version: str = Field(default="", max_length=100, pattern=_NO_NUL)
    running: Annotated[int, Field(ge=0, le=1_000_000), WHOLE] = Field(
        default=0, description="jobs the worker holds as it asks (shown in GET /workers)"
    )


class ClaimIn(_Body):
    """A claim: up to `max_jobs` jobs of `queues`, waiting up to `wait` seconds for one."""

    worker: WorkerIdentity
    queues: list[QueueName] = Field(min_length=1, max_length=100)
    tasks: list[TaskName] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description='only jobs of these tasks (`""`: jobs without one); null: any task',
    )
    max_jobs: Annotated[int, Field(ge=1, le=MAX_JOBS), WHOLE] = 1
    wait: float = Field(
        default=0.0,
        ge=0.0,
        le=MAX_WAIT,
        description="seconds to wait for a job when none is runnable now; 0: answer at once",
    )
    lease_seconds: float | None = Field(
        default=None,
        ge=LEASE_MIN,
        le=LEASE_MAX,
        description="how long each lease lasts before a heartbeat must extend it; "
        "null: the server's JQS_LEASE_SECONDS",
    )


class ClaimedJobOut(BaseModel):
    """A claimed job: run it, heartbeat its lease, report its end with its lease token."""

    id: int
    task: str | None
    queue: str
    payload: dict[str, Any]
    attempt: int = Field(description="this attempt's number, from 1")
    max_attempts: int
    timeout: float | None = Field(description="seconds the attempt may run; null: no limit")
    lease_token: uuid.UUID
    lease_expires_at: str = Field(
        description="when the lease ends unless extended (the database's clock)"
    )
    waited: float = Field(
        description="seconds from when the job became due to this claim (its queue wait)"
    )
    traceparent: str | None = Field(
        description="the W3C trace context of the request that submitted the job, when it "
        "was traced (OpenTelemetry on): start the attempt's span as its child; null otherwise"
    )


class WorkerBeatIn(_Body):
    """An idle worker saying it is alive, and what it serves."""

    host: str = Field(default="", max_length=255, pattern=_NO_NUL)
    version: str = Field(default="", max_length=100, pattern=_NO_NUL)
    queues: list[QueueName] = Field(min_length=1, max_length=100)
    running: Annotated[int, Field(ge=0, le=1_000_000), WHOLE] = 0
    concurrency: Annotated[int, Field(ge=1, le=1_000_000), WHOLE] = 1


class JobBeatIn(_Body):
    """Keep a job's lease."""

    lease_token: LeaseToken
    lease_seconds: float | None = Field(
        default=None,
        ge=LEASE_MIN,
        le=LEASE_MAX,
        description="the lease's new length from now; null: the server's JQS_LEASE_SECONDS",
    )


class JobBeatOut(BaseModel):
    """The lease, extended; and whether someone asked for the job to be cancelled."""

    job_id: int
    lease_expires_at: str
    cancel_requested: bool = Field(
        description="stop the job and report its end (it ends `cancelled`)"
    )


class ProgressIn(_Body):
    """How far the attempt has got, as an in-process handler reports it."""

    lease_token: LeaseToken
    progress: float = Field(ge=0.0, le=1.0)
    message: str | None = Field(default=None, max_length=1000, pattern=_NO_NUL)
    data: StorableObject = None


class ErrorIn(_Body):
    """Why the attempt failed."""

    type: str = Field(
        min_length=1, max_length=200, pattern=_NO_NUL, description="e.g. the exception's class"
    )
    message: str = Field(max_length=10_000, pattern=_NO_NUL)
    traceback: str | None = Field(default=None, max_length=100_000, pattern=_NO_NUL)


class CompleteIn(_Body):
    """The attempt completed: `result` becomes the job's result."""

    lease_token: LeaseToken
    result: Storable = None


class FailIn(_Body):
    """The attempt failed. It runs again (after `retry_in` seconds, else the server's
    backoff) while attempts remain, unless `final`."""

    lease_token: LeaseToken
    error: ErrorIn
    retry_in: float | None = Field(default=None, ge=0.0, le=RETRY_IN_MAX)
    final: bool = Field(default=False, description="fail the job now, attempts left or not")


class OutcomeIn(_Body):
    """One attempt's end in a batch: `complete` with its `result`, or `fail` with its
    `error` (absent: an error of type `Error` saying no more) and `retry_in`, `final`."""

    job_id: Annotated[int, Field(ge=1, le=2**63 - 1), WHOLE]
    outcome: Literal["complete", "fail"]
    lease_token: LeaseToken
    result: Storable = None
    error: ErrorIn | None = None
    retry_in: float | None = Field(default=None, ge=0.0, le=RETRY_IN_MAX)
    final: bool = False


class OutcomesIn(_Body):
    """Many attempts' ends, written together."""

    outcomes: list[OutcomeIn] = Field(min_length=1, max_length=MAX_OUTCOMES)


class OutcomeOut(BaseModel):
    """Where the job is now that its end is written."""

    job_id: int
    status: Literal["completed", "queued", "failed", "cancelled"] = Field(
        description="`queued`: it runs again after `retry_in` seconds; `cancelled`: "
        "cancellation was asked for, whatever the report"
    )
    retry_in: float | None = None


class OutcomeItemOut(BaseModel):
    """One outcome of a batch: written (`ok`), or refused with the problem an outcome on
    its own would have got (409: the lease does not hold; 403: out of the key's reach)."""

    job_id: int
    ok: bool
    status: Literal["completed", "queued", "failed", "cancelled"] | None = None
    retry_in: float | None = None
    problem: dict[str, Any] | None = Field(default=None, description="{status, detail}")


class OutcomesOut(BaseModel):
    """Per outcome, in the order sent."""

    results: list[OutcomeItemOut]


class LeaseIn(_Body):
    """A job the worker holds, and the lease token its claim gave."""

    job_id: Annotated[int, Field(ge=1, le=2**63 - 1), WHOLE]
    lease_token: LeaseToken


class LeasesIn(_Body):
    """Running jobs' leases: look at them, and extend those that hold."""

    leases: list[LeaseIn] = Field(min_length=1, max_length=MAX_LEASES)
    extend: bool = Field(default=True, description="extend the leases that hold; false: only look")
    lease_seconds: float | None = Field(
        default=None,
        ge=LEASE_MIN,
        le=LEASE_MAX,
        description="the leases' new length from now; null: the server's JQS_LEASE_SECONDS",
    )


class LeasesOut(BaseModel):
    """What became of the leases."""

    lost: list[int] = Field(
        description="stop these jobs and drop them: their lease does not hold (or the job is "
        "outside what the API key may use)"
    )
    cancel_requested: list[int] = Field(
        description="stop these jobs and report their end (they end `cancelled`)"
    )
    lease_expires_at: dict[str, str] = Field(
        description="by job id, when each extended lease ends (empty when not `extend`)"
    )


class ReleaseIn(_Body):
    """Jobs the worker will not run after all (it is stopping)."""

    leases: list[LeaseIn] = Field(min_length=1, max_length=MAX_LEASES)


class ReleaseOut(BaseModel):
    """How many of the jobs went back."""

    released: int = Field(description="jobs handed back (the others' leases did not hold)")


class WorkerOut(BaseModel):
    """A live worker: in a JQS process, or one that uses the HTTP protocol."""

    id: str
    host: str
    queues: list[str]
    version: str
    concurrency: int
    running: int = Field(description="jobs it held when it last said so")
    started_at: str
    last_seen_at: str = Field(description="its last heartbeat, claim or lease heartbeat")


_Model = TypeVar("_Model", bound=BaseModel)


def _filled(node: Any) -> Any:
    if isinstance(node, dict):
        if "x-jqs" in node:
            rest = {key: value for key, value in node.items() if key != "x-jqs"}
            return {**rest, **_FILLED[node["x-jqs"]]}
        return {key: _filled(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_filled(value) for value in node]
    return node


def _components(*models: type[BaseModel]) -> dict[str, Any]:
    """The request bodies' schemas, for the document's components."""
    found: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    filled: dict[str, Any] = _filled(found)
    return filled


WORKER_COMPONENTS = _components(ClaimIn, WorkerBeatIn, JobBeatIn, ProgressIn, CompleteIn, FailIn)
WORKER_COMPONENTS.update(_components(OutcomesIn, LeasesIn, ReleaseIn))


def _body(model: type[BaseModel], max_bytes: int) -> dict[str, Any]:
    return json_body({"$ref": f"#/components/schemas/{model.__name__}"}, max_bytes)


def _remote(state: ApiState) -> RemoteWorkers:
    if state.remote is None:
        raise ProblemError(503, "this server does not serve the worker protocol")
    return state.remote


async def _read(
    request: Request, state: ApiState, model: type[_Model], max_bytes: int
) -> tuple[_Model, dict[str, Any]]:
    _, body = await read_json_object(
        request, max_bytes=max_bytes, max_depth=state.limits.max_json_depth
    )
    try:
        return model.model_validate(body), body
    except ValidationError as exc:
        errors = describe(exc)
        raise ProblemError(
            422, "; ".join(f"{e['loc']}: {e['msg']}" for e in errors), errors=errors
        ) from None


def _tasks(principal: Principal, asked: list[str] | None) -> tuple[str, ...] | None:
    """The tasks a claim keeps to: those asked for, within the key's."""
    if asked is None:
        return None if principal.tasks is None else tuple(sorted(principal.tasks))
    for task in asked:
        require_task(principal, task)
    return tuple(dict.fromkeys(asked))


def _claimed_json(job: ClaimedJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "task": job.task,
        "queue": job.queue,
        "payload": job.payload,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "timeout": job.timeout,
        "lease_token": job.lease.token,
        "lease_expires_at": job.lease_expires_at,
        "waited": job.waited,
        "traceparent": job.trace_context,
    }


_CLAIM_DOC = """Up to `max_jobs` runnable jobs of `queues`, at once when there are any.
Otherwise the request waits up to `wait` seconds for one to arrive (`[]` when none does, or
when the server is stopping). Each job is now `processing` under a lease: extend it with
`POST /v1/jobs/{id}/heartbeat` before `lease_expires_at`, or the job goes back to the queue
(its attempt counted) and another worker gets it. The queues' pause, concurrency and rate
limits hold as for any worker. The claim also counts as the worker's heartbeat."""


@router.post(
    f"{PREFIX}/workers/claim",
    operation_id="claim_jobs",
    summary="Claim jobs (long-poll)",
    response_model=list[ClaimedJobOut],
    responses=problem_responses(400, 413, 415, 422, 503),
    description=_CLAIM_DOC,
    openapi_extra={**scope_doc(Scope.WORKER), "requestBody": _body(ClaimIn, SMALL_BODY)},
)
async def claim_jobs(request: Request, state: State, principal: WorkerKey) -> Response:
    remote = _remote(state)
    ask, _ = await _read(request, state, ClaimIn, SMALL_BODY)
    queues = tuple(dict.fromkeys(ask.queues))
    for queue in queues:
        require_queue(principal, queue)
    tasks = _tasks(principal, ask.tasks)
    worker = ask.worker
    await remote.beat(
        WorkerBeat(
            id=worker.id,
            host=worker.host,
            queues=list(queues),
            version=worker.version,
            concurrency=ask.max_jobs,
            running=worker.running,
        )
    )
    claim = ClaimAsk(
        worker_id=worker.id,
        queues=queues,
        limit=ask.max_jobs,
        lease_seconds=ask.lease_seconds or remote.lease_seconds,
        wait=0.0 if state.shutting_down else ask.wait,
        tasks=tasks,
    )
    async with departure(request) as gone:
        jobs = await remote.hub.claim(claim, gone=gone)
        if jobs and gone.done():
            # Nobody to run them: back to the queue at once, the attempt not counted.
            await remote.queue.release([job.lease for job in jobs])
            jobs = []
    return JSONResponse([_claimed_json(job) for job in jobs])


@router.post(
    f"{PREFIX}/workers/{{worker_id}}/heartbeat",
    operation_id="worker_heartbeat",
    summary="Keep an idle worker listed",
    status_code=204,
    response_class=Response,
    responses=problem_responses(400, 413, 415, 422, 503),
    openapi_extra={**scope_doc(Scope.WORKER), "requestBody": _body(WorkerBeatIn, SMALL_BODY)},
)
async def worker_heartbeat(
    request: Request, state: State, principal: WorkerKey, worker_id: WorkerId
) -> Response:
    """A worker is listed in `GET /workers` for a minute after it was last heard from (a
    claim, a job's heartbeat, or this); an idle one that does not claim sends this."""
    remote = _remote(state)
    beat, _ = await _read(request, state, WorkerBeatIn, SMALL_BODY)
    for queue in beat.queues:
        require_queue(principal, queue)
    await remote.beat(
        always=True,
        beat=WorkerBeat(
            id=worker_id,
            host=beat.host,
            queues=list(dict.fromkeys(beat.queues)),
            version=beat.version,
            concurrency=beat.concurrency,
            running=beat.running,
        ),
    )
    return Response(status_code=204)


_LEASE_LOST_RESPONSE: dict[int | str, dict[str, Any]] = {
    409: problem_response(409, "The lease does not hold: drop the job")
}


@router.post(
    f"{PREFIX}{JOB_PATH}/heartbeat",
    operation_id="job_heartbeat",
    summary="Extend a job's lease",
    response_model=JobBeatOut,
    responses={**problem_responses(400, 413, 415, 422, 503), **_LEASE_LOST_RESPONSE},
    openapi_extra={**scope_doc(Scope.WORKER), "requestBody": _body(JobBeatIn, SMALL_BODY)},
)
async def job_heartbeat(
    request: Request, state: State, principal: WorkerKey, job_id: JobId
) -> Response:
    """The lease now lasts `lease_seconds` from now; send this well before it ends (every
    third of it, say). `cancel_requested`: stop the job and report its end. It also counts
    as the worker's heartbeat."""
    remote = _remote(state)
    beat, _ = await _read(request, state, JobBeatIn, SMALL_BODY)
    lease = Lease(job_id, beat.lease_token)
    if not await _within_reach(remote, principal, [lease]):
        # Out of the key's reach is told as a lease that does not hold: no job is revealed.
        raise ProblemError(409, LEASE_LOST, job_id=job_id)
    check = await remote.queue.check_leases(
        LeaseCheckParams([lease], extend_by=beat.lease_seconds or remote.lease_seconds)
    )
    if job_id in check.lost:
        raise ProblemError(409, LEASE_LOST, job_id=job_id)
    return JSONResponse(
        {
            "job_id": job_id,
            "lease_expires_at": check.expires_at.get(job_id),
            "cancel_requested": job_id in check.cancel_requested,
        }
    )


async def _within_reach(
    remote: RemoteWorkers, principal: Principal, leases: list[Lease]
) -> list[Lease]:
    """The leases whose jobs the key may touch (and that hold); a key limited to no queue
    or task costs no look."""
    if not principal.restricted:
        return leases
    held = await remote.queue.held(leases)
    reach = {job.id for job in held if principal.may_touch(job.queue, job.task)}
    return [lease for lease in leases if lease.job_id in reach]


@router.post(
    f"{PREFIX}/workers/leases",
    operation_id="check_leases",
    summary="Extend many jobs' leases at once",
    response_model=LeasesOut,
    responses=problem_responses(400, 413, 415, 422, 503),
    openapi_extra={**scope_doc(Scope.WORKER), "requestBody": _body(LeasesIn, LEASES_BODY)},
)
async def check_leases(request: Request, state: State, principal: WorkerKey) -> Response:
    """What `POST /v1/jobs/{id}/heartbeat` does for one job, for every job a worker holds,
    in one statement: the leases that hold are extended (unless `extend` is false), and the
    answer names the jobs to drop (`lost`) and to stop (`cancel_requested`). Send it about
    every third of the lease; without `extend`, as often as cancellation should be noticed.
    It also counts as the worker's heartbeat."""
    remote = _remote(state)
    body, _ = await _read(request, state, LeasesIn, LEASES_BODY)
    asked = [Lease(item.job_id, item.lease_token) for item in body.leases]
    leases = await _within_reach(remote, principal, asked)
    extend_by = (body.lease_seconds or remote.lease_seconds) if body.extend else None
    check = await remote.queue.check_leases(LeaseCheckParams(leases, extend_by=extend_by))
    kept = {lease.job_id for lease in leases} - check.lost
    return JSONResponse(
        {
            "lost": sorted({lease.job_id for lease in asked} - kept),
            "cancel_requested": sorted(check.cancel_requested & kept),
            "lease_expires_at": {str(job): at for job, at in check.expires_at.items()},
        }
    )


@router.post(
    f"{PREFIX}{JOB_PATH}/progress",
    operation_id="job_progress",
    summary="Report a running job's progress",
    status_code=204,
    response_class=Response,
    responses={**problem_responses(400, 413, 415, 422, 503), **_LEASE_LOST_RESPONSE},
    openapi_extra={**scope_doc(Scope.WORKER), "requestBody": _body(ProgressIn, SMALL_BODY)},
)
async def job_progress(
    request: Request, state: State, principal: WorkerKey, job_id: JobId
) -> Response:
    """The job's `progress` field (and its `job.progress` event), as an in-process handler
    reports it."""
    remote = _remote(state)
    report, _ = await _read(request, state, ProgressIn, SMALL_BODY)
    lease = Lease(job_id, report.lease_token)
    if not await _within_reach(remote, principal, [lease]):
        raise ProblemError(409, LEASE_LOST, job_id=job_id)
    written = await remote.queue.progress(
        lease,
        Progress(report.progress, report.message, report.data),
    )
    if not written:
        raise ProblemError(409, LEASE_LOST, job_id=job_id)
    return Response(status_code=204)


_NO_ERROR = ErrorIn(type="Error", message="the worker reported a failure and no error")


def _reported(job_id: int, body: CompleteIn | FailIn | OutcomeIn) -> Report:
    lease = Lease(job_id, body.lease_token)
    if isinstance(body, CompleteIn) or (isinstance(body, OutcomeIn) and body.outcome == "complete"):
        return Report(lease, result=encode_result(body.result) if body.result is not None else None)
    sent = body.error or _NO_ERROR
    error = ReportedError(sent.type, sent.message, sent.traceback)
    return Report(lease, error=error, retry_in=body.retry_in, final=body.final)


def _outcome_json(written: Written) -> dict[str, Any]:
    assert written.status is not None
    return {"job_id": written.job_id, "status": written.status.value, "retry_in": written.retry_in}


async def _end_one(state: ApiState, principal: Principal, report: Report) -> Response:
    [written] = await _remote(state).ends.write([report], principal.may_touch)
    if written.verdict is Verdict.LEASE_LOST:
        raise ProblemError(409, LEASE_LOST, job_id=written.job_id)
    if written.verdict is Verdict.FORBIDDEN:
        raise ProblemError(403, FORBIDDEN, job_id=written.job_id)
    return JSONResponse(_outcome_json(written))


def _end_limit(state: ApiState) -> int:
    return state.limits.max_body_bytes + SMALL_BODY


def document_limits(document: dict[str, Any], limits: Limits) -> None:
    """State the body sizes this server takes for outcomes."""
    paths = document["paths"]
    end = limits.max_body_bytes + SMALL_BODY
    sizes = {
        f"{PREFIX}/jobs/{{job_id}}/complete": end,
        f"{PREFIX}/jobs/{{job_id}}/fail": end,
        f"{PREFIX}/workers/outcomes": limits.batch_max_bytes,
    }
    for path, size in sizes.items():
        body = paths[path]["post"]["requestBody"]
        body["description"] = json_body({}, size)["description"]


_END_RESPONSES: dict[int | str, dict[str, Any]] = {
    **problem_responses(400, 413, 415, 422, 503),
    **_LEASE_LOST_RESPONSE,
    403: problem_response(403, "The key lacks the scope, or the job is out of its reach"),
}


@router.post(
    f"{PREFIX}{JOB_PATH}/complete",
    operation_id="complete_job",
    summary="Report that a job's attempt completed",
    response_model=OutcomeOut,
    responses=_END_RESPONSES,
    openapi_extra={**scope_doc(Scope.WORKER), "requestBody": _body(CompleteIn, _END_BYTES)},
)
async def complete_job(
    request: Request, state: State, principal: WorkerKey, job_id: JobId
) -> Response:
    """The job ends `completed` with `result` (`cancelled` if cancellation was asked)."""
    body, _ = await _read(request, state, CompleteIn, _end_limit(state))
    return await _end_one(state, principal, _reported(job_id, body))


@router.post(
    f"{PREFIX}{JOB_PATH}/fail",
    operation_id="fail_job",
    summary="Report that a job's attempt failed",
    response_model=OutcomeOut,
    responses=_END_RESPONSES,
    openapi_extra={**scope_doc(Scope.WORKER), "requestBody": _body(FailIn, _END_BYTES)},
)
async def fail_job(request: Request, state: State, principal: WorkerKey, job_id: JobId) -> Response:
    """The job is `queued` again while attempts remain (after `retry_in` seconds, else the
    server's backoff), unless `final`; then `failed`, the error its result (`cancelled` if
    cancellation was asked). Each error joins the job's `errors`."""
    body, _ = await _read(request, state, FailIn, _end_limit(state))
    return await _end_one(state, principal, _reported(job_id, body))


@router.post(
    f"{PREFIX}/workers/outcomes",
    operation_id="report_outcomes",
    summary="Report many attempts' ends at once",
    response_model=OutcomesOut,
    responses=problem_responses(400, 413, 415, 422, 503),
    openapi_extra={**scope_doc(Scope.WORKER), "requestBody": _body(OutcomesIn, _OUTCOMES_BYTES)},
)
async def report_outcomes(request: Request, state: State, principal: WorkerKey) -> Response:
    """Each as `complete` or `fail` would write it, all in one statement; the answer is per
    outcome, in order. A job named twice is written at most once (the other's lease no
    longer holds)."""
    remote = _remote(state)
    body, _ = await _read(request, state, OutcomesIn, state.limits.batch_max_bytes)
    reports = [_reported(item.job_id, item) for item in body.outcomes]
    results: list[dict[str, Any]] = []
    for item in await remote.ends.write(reports, principal.may_touch):
        if item.verdict is Verdict.WRITTEN:
            results.append({"ok": True, **_outcome_json(item)})
            continue
        status, detail = (
            (409, LEASE_LOST) if item.verdict is Verdict.LEASE_LOST else (403, FORBIDDEN)
        )
        results.append(
            {"job_id": item.job_id, "ok": False, "problem": {"status": status, "detail": detail}}
        )
    return JSONResponse({"results": results})


@router.post(
    f"{PREFIX}/workers/release",
    operation_id="release_jobs",
    summary="Hand jobs back to the queue",
    response_model=ReleaseOut,
    responses=problem_responses(400, 413, 415, 422, 503),
    openapi_extra={**scope_doc(Scope.WORKER), "requestBody": _body(ReleaseIn, LEASES_BODY)},
)
async def release_jobs(request: Request, state: State, principal: WorkerKey) -> Response:
    """A worker that is stopping gives back jobs it claimed and will not run (or stopped
    before they ended): each goes back to `queued` at once, for any worker, its attempt not
    counted (event `job.released`); one asked to cancel ends `cancelled`. Leases that do
    not hold, and jobs outside the API key's reach, are left as they are."""
    remote = _remote(state)
    body, _ = await _read(request, state, ReleaseIn, LEASES_BODY)
    asked = [Lease(item.job_id, item.lease_token) for item in body.leases]
    held = await remote.queue.held(asked)
    reach = {job.id for job in held if principal.may_touch(job.queue, job.task)}
    released = await remote.queue.release([lease for lease in asked if lease.job_id in reach])
    if released:
        for queue in sorted({job.queue for job in held if job.id in reach}):
            state.on_enqueue(queue)  # runnable now: wake the workers waiting for it
    return JSONResponse({"released": released})


@router.post(
    f"{PREFIX}/workers/{{worker_id}}/gone",
    operation_id="worker_gone",
    summary="Say that a worker has stopped",
    status_code=204,
    response_class=Response,
    responses={
        **problem_responses(422, 503),
        403: problem_response(
            403, "The key lacks the scope, or the worker serves a queue out of its reach"
        ),
    },
    openapi_extra=scope_doc(Scope.WORKER),
)
async def worker_gone(state: State, principal: WorkerKey, worker_id: WorkerId) -> Response:
    """The worker leaves `GET /workers` now rather than a minute after it was last heard
    from. Its jobs are not touched: release them first. Unknown workers are fine (204)."""
    remote = _remote(state)
    if principal.queues is not None:
        for worker in await state.store.workers():
            if worker.id == worker_id:
                for queue in worker.queues:
                    require_queue(principal, queue)
    await remote.gone(worker_id)
    return Response(status_code=204)


@router.get(
    "/workers",
    operation_id="list_workers",
    summary="List live workers",
    response_model=list[WorkerOut],
    responses=problem_responses(503),
    openapi_extra=scope_doc(Scope.JOBS_READ),
)
async def list_workers(state: State, principal: ReadKey) -> Response:
    """Every worker heard from in the last minute, in JQS processes and over HTTP (those
    serving a queue the API key may use)."""
    workers: list[WorkerInfo] = await state.store.workers()
    return JSONResponse([w for w in workers if any(principal.may_use_queue(q) for q in w.queues)])
