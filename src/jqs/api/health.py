"""Liveness (`/health`, the seed's `OK`) and readiness (`/ready`, checks the database)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from starlette.responses import PlainTextResponse, Response

from jqs.api.openapi import problem_response
from jqs.api.render import JSONResponse, problem
from jqs.api.state import ApiState, api_state
from jqs.errors import StoreError

router = APIRouter(tags=["health"])
_READY_TIMEOUT = 2.0


class Readiness(BaseModel):
    """What /ready found."""

    status: Literal["ready"]
    database: Literal["ok"]


@router.get(
    "/health",
    operation_id="health",
    summary="Liveness: the process answers",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"example": "OK"}}}},
)
async def health() -> PlainTextResponse:
    """`OK` while the process is alive, whatever the database is doing."""
    return PlainTextResponse("OK")


@router.get(
    "/ready",
    operation_id="ready",
    summary="Readiness: the database answers and we are not shutting down",
    response_model=Readiness,
    responses={503: problem_response(503, "Not ready: shutting down, or no database")},
)
async def ready(state: Annotated[ApiState, Depends(api_state)]) -> Response:
    """200 when new work can be accepted; 503 otherwise."""
    if state.shutting_down:
        return problem(503, "Service Unavailable", "shutting down")
    try:
        await asyncio.wait_for(state.store.ping(), _READY_TIMEOUT)
    except (StoreError, TimeoutError):
        return problem(
            503, "Service Unavailable", "the database is unavailable", headers={"Retry-After": "1"}
        )
    return JSONResponse({"status": "ready", "database": "ok"})
