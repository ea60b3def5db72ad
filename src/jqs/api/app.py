"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from jqs import __version__
from jqs.api import batch, health, jobs, queues
from jqs.api.access_log import AccessLog
from jqs.api.problems import install_problem_handlers, problem_for
from jqs.api.state import ApiState


class JQSApp:
    """The ASGI app: POST /jobs on a short path, everything else through FastAPI.

    POST /jobs is the hottest path of the service. FastAPI's routing, dependency and
    middleware layers cost about as much CPU as the work itself, so that one route is
    answered here directly (same code, same errors); FastAPI still documents it in OpenAPI
    and serves every other route.
    """

    def __init__(self, fastapi: FastAPI, state: ApiState) -> None:
        self.fastapi = fastapi
        self.state = fastapi.state
        self._api_state = state
        self._app = AccessLog(self._route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/jobs" and scope["method"] == "POST":
            request = Request(scope, receive)
            try:
                response = await jobs.submit(request, self._api_state)
            except Exception as exc:
                response = await problem_for(request, exc)
            await response(scope, receive, send)
            return
        await self.fastapi(scope, receive, send)


def create_app(state: ApiState) -> JQSApp:
    """Build the HTTP API around an already started store."""
    app = FastAPI(
        title="JQS",
        version=__version__,
        description=(
            "A PostgreSQL-backed job queue service. Submit any JSON object to `POST /jobs`; "
            "`payload.task` names the handler. Delivery is at least once."
        ),
    )
    app.state.jqs = state
    install_problem_handlers(app)
    app.include_router(batch.router)  # before /jobs/{job_id}, which would shadow it
    app.include_router(jobs.router)
    app.include_router(queues.router)
    app.include_router(health.router)
    return JQSApp(app, state)
