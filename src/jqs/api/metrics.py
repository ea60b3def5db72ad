"""/metrics: Prometheus's text format (scope `metrics`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import Response

from jqs.api.auth import MetricsKey, scope_doc
from jqs.api.openapi import problem_responses
from jqs.api.problems import ProblemError
from jqs.api.state import ApiState, api_state
from jqs.auth.scopes import Scope
from jqs.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["metrics"])
State = Annotated[ApiState, Depends(api_state)]


@router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics of this process, and gauges of the whole deployment",
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        },
        **problem_responses(404),
    },
    response_class=Response,
    openapi_extra=scope_doc(Scope.METRICS),
)
async def metrics(state: State, principal: MetricsKey) -> Response:
    """Counters and histograms of what this process did, the deployment's queue and worker
    gauges (read from the database at most every 5 seconds), and the process's CPU and
    memory."""
    if state.exposition is None:
        raise ProblemError(404, "metrics are switched off (JQS_METRICS=false)")
    return Response(await state.exposition.render(), media_type=CONTENT_TYPE_LATEST)
