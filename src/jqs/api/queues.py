"""/queues: what each queue holds, and its limits (changeable at runtime)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from jqs.api.auth import QueuesAdminKey, ReadKey, require_queue, scope_doc
from jqs.api.body import read_json_object
from jqs.api.options import describe
from jqs.api.problems import ProblemError
from jqs.api.render import PROBLEM_CONTENT_TYPE, JSONResponse
from jqs.api.state import ApiState, api_state
from jqs.auth.scopes import Scope
from jqs.logging import get_logger
from jqs.models import QueueInfo, QueueSettings
from jqs.store.port import QueuePatch as StoredPatch
from jqs.tasks.names import QUEUE_NAME

log = get_logger(__name__)
router = APIRouter(tags=["queues"])
_PROBLEM = {"content": {PROBLEM_CONTENT_TYPE: {"schema": {"type": "object"}}}}


class QueuePatch(BaseModel):
    """Fields to change; a field left out stays as it is, null removes a limit."""

    model_config = ConfigDict(extra="forbid")

    concurrency_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    rate_limit: float | None = Field(default=None, gt=0, le=1_000_000)
    paused: bool = False


class QueueOut(BaseModel):
    """A queue: limits, pause flag, jobs by status, wait of its oldest runnable job."""

    name: str
    paused: bool
    concurrency_limit: int | None = Field(description="jobs running at once, at most")
    rate_limit: float | None = Field(description="jobs started per second, at most")
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
    response_model=list[QueueOut],
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
    responses={404: _PROBLEM, 415: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM},
    openapi_extra=scope_doc(Scope.QUEUES_ADMIN),
)
async def update_queue(
    request: Request,
    state: Annotated[ApiState, Depends(api_state)],
    principal: QueuesAdminKey,
    name: Annotated[str, Path(pattern=QUEUE_NAME.pattern)],
) -> Response:
    """Set or remove limits, pause or resume; takes effect at the next claim anywhere."""
    require_queue(principal, name)
    _, body = await read_json_object(request, max_bytes=16_384, max_depth=4)
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
    return JSONResponse(_settings_json(settings))
