"""/queues: what each queue holds, and its limits (changeable at runtime)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.responses import Response

from jqs.api.auth import QueuesAdminKey, ReadKey, require_queue, scope_doc
from jqs.api.body import read_json_object
from jqs.api.bounds import DEFAULT_INTERVAL
from jqs.api.openapi import json_body, problem_response, problem_responses
from jqs.api.options import describe
from jqs.api.problems import ProblemError
from jqs.api.render import JSONResponse
from jqs.api.state import ApiState, api_state
from jqs.auth.scopes import Scope
from jqs.logging import get_logger
from jqs.models import QueueInfo, QueueSettings
from jqs.port import QueuePatch as StoredPatch
from jqs.tasks.names import QUEUE_NAME

log = get_logger(__name__)
router = APIRouter(tags=["queues"])
MAX_PATCH_BYTES = 16_384
QueueName = Annotated[str, Path(pattern=QUEUE_NAME.pattern, description="the queue's name")]


# What a queue's limits may be. A rate below one job in about 17 minutes is a pause in
# disguise (pause it instead); one count of a bounded queue reads up to max_queued entries.
CONCURRENCY_MAX = 1_000_000
RATE_MIN, RATE_MAX = 0.001, 1_000_000.0
MAX_QUEUED_MAX = 1_000_000
MAX_QUEUED_NOTE = (
    "queued jobs at most: past it, POST /jobs and POST /jobs/batch answer 429 with "
    "Retry-After. A soft bound: each API process recounts the queue every "
    f"{DEFAULT_INTERVAL:g} s and adds the jobs it accepts itself in between. One API process "
    "never takes the queue past it; with several, the queue can exceed it by what the others "
    "accept within that time, and the jobs they admit never number more than their count "
    "times max_queued. Jobs coming back to queued (retries, rescues) and periodic jobs are "
    "not refused. null: no bound"
)


def _whole(value: object) -> object:
    # JSON has one kind of number: 4.0 is 4. Booleans are not numbers here (strict below).
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is float:
        raise ValueError(f"must be a whole number, not {value}")
    return value


# After the bounds: a validator before them would hide them from the JSON schema (also used
# by jqs.api.workers).
WHOLE = BeforeValidator(_whole)


class QueuePatch(BaseModel):
    """Fields to change; a field left out stays as it is, null removes a limit."""

    # Strict: "yes" is not a boolean, true is not a number, "4" is not an integer.
    model_config = ConfigDict(extra="forbid", strict=True)

    concurrency_limit: Annotated[int, Field(ge=1, le=CONCURRENCY_MAX), WHOLE] | None = Field(
        default=None, description="jobs running at once, at most"
    )
    rate_limit: float | None = Field(
        default=None, ge=RATE_MIN, le=RATE_MAX, description="jobs started per second, at most"
    )
    paused: bool = Field(default=False, description="true: no job of the queue starts")
    max_queued: Annotated[int, Field(ge=1, le=MAX_QUEUED_MAX), WHOLE] | None = Field(
        default=None, description=MAX_QUEUED_NOTE
    )


class QueueSettingsOut(BaseModel):
    """A queue's limits, pause flag and bound."""

    name: str
    paused: bool
    concurrency_limit: int | None = Field(description="jobs running at once, at most")
    rate_limit: float | None = Field(description="jobs started per second, at most")
    max_queued: int | None = Field(description=MAX_QUEUED_NOTE)


class QueueOut(QueueSettingsOut):
    """A queue: limits, pause flag, jobs by status, wait of its oldest runnable job."""

    counts: dict[str, int]
    oldest_queued_seconds: float | None
    workers: list[str] = Field(
        description="live workers serving the queue; none: its queued jobs wait for one"
    )


def _settings_json(settings: QueueSettings) -> dict[str, Any]:
    return {
        "name": settings.name,
        "paused": settings.paused,
        "concurrency_limit": settings.concurrency_limit,
        "rate_limit": settings.rate_limit,
        "max_queued": settings.max_queued,
    }


def _info_json(info: QueueInfo) -> dict[str, Any]:
    return {
        **_settings_json(info.settings),
        "counts": {status.value: n for status, n in info.counts.items()},
        "oldest_queued_seconds": info.oldest_queued_seconds,
        "workers": info.workers,
    }


@router.get(
    "/queues",
    operation_id="list_queues",
    summary="List queues",
    response_model=list[QueueOut],
    responses=problem_responses(503),
    openapi_extra=scope_doc(Scope.JOBS_READ),
)
async def list_queues(
    state: Annotated[ApiState, Depends(api_state)], principal: ReadKey
) -> Response:
    """Every queue that has jobs or settings (those the API key may use)."""
    infos = await state.store.queue_infos()
    return JSONResponse(
        [_info_json(info) for info in infos if principal.may_use_queue(info.settings.name)]
    )


@router.patch(
    "/queues/{name}",
    operation_id="update_queue",
    summary="Change a queue's limits, pause or resume it",
    response_model=QueueSettingsOut,
    responses=problem_responses(400, 413, 415, 422, 503),
    openapi_extra={
        **scope_doc(Scope.QUEUES_ADMIN),
        "requestBody": json_body(QueuePatch.model_json_schema(), MAX_PATCH_BYTES),
    },
)
async def update_queue(
    request: Request,
    state: Annotated[ApiState, Depends(api_state)],
    principal: QueuesAdminKey,
    name: QueueName,
) -> Response:
    """Set or remove limits, pause or resume; takes effect at the next claim anywhere."""
    require_queue(principal, name)
    _, body = await read_json_object(request, max_bytes=MAX_PATCH_BYTES, max_depth=4)
    try:
        patch = QueuePatch.model_validate(body)
    except ValidationError as exc:
        errors = describe(exc)
        raise ProblemError(
            422, "; ".join(f"{e['loc']}: {e['msg']}" for e in errors), errors=errors
        ) from None
    changes = {field: getattr(patch, field) for field in patch.model_fields_set}
    settings = await state.store.queue_update(
        StoredPatch(name=name, **changes, given=frozenset(changes))
    )
    log.info("queue_updated", queue=name, key_id=principal.id, **changes)
    if "paused" in changes and not settings.paused:
        state.on_enqueue(name)
    if "max_queued" in changes and state.bounds is not None:
        await state.bounds.refresh_quietly()  # this process applies it at once
    return JSONResponse(_settings_json(settings))


@router.delete(
    "/queues/{name}",
    operation_id="delete_queue",
    summary="Remove a queue's settings",
    status_code=204,
    response_class=Response,
    responses={
        **problem_responses(409, 422, 503),
        404: problem_response(404, "The queue has no settings to remove"),
    },
    openapi_extra=scope_doc(Scope.QUEUES_ADMIN),
)
async def delete_queue(
    state: Annotated[ApiState, Depends(api_state)], principal: QueuesAdminKey, name: QueueName
) -> Response:
    """Remove a queue's limits, pause and bound (204) once none of its jobs is queued or
    running (else 409). Its finished jobs stay; a new job in it starts with no settings."""
    require_queue(principal, name)
    removal = await state.store.queue_delete(name)
    if removal.unfinished:
        raise ProblemError(
            409,
            f"queue {name!r} still has {removal.unfinished} unfinished jobs (queued or "
            "running); cancel them or let them finish, then delete the queue",
            unfinished=removal.unfinished,
        )
    if not removal.found:
        raise ProblemError(404, f"queue {name!r} has no settings to remove")
    log.info("queue_deleted", queue=name, key_id=principal.id)
    if state.bounds is not None:
        await state.bounds.refresh_quietly()
    return Response(status_code=204)
