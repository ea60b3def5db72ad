"""The HTTP API: POST /jobs, and FastAPI for every other route.

POST /jobs is the service's hottest path, and FastAPI's layers (routing through included
routers, dependency solving, its middleware) cost more CPU than the route itself; make
bench's single POST row measures the difference (docs/benchmarks.md). So POST /jobs is not
a FastAPI route: `JQSApp` answers it directly, with the same problem documents as every
other route, and its OpenAPI operation (jqs.api.jobs.submit_job_operation) is added to the
document FastAPI generates for the rest. There is one route, one implementation, one doc.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from jqs import __version__
from jqs.api import batch, docs, health, jobs, queues
from jqs.api.access_log import AccessLog
from jqs.api.openapi import PROBLEM_SCHEMA, STORABLE_SCHEMA
from jqs.api.problems import install_problem_handlers, problem_for
from jqs.api.state import ApiState, Limits

DESCRIPTION = (
    "A PostgreSQL-backed job queue service. Submit any JSON object to `POST /jobs`; "
    "`payload.task` names the handler. Delivery is at least once."
)


class JQSApp:
    """The ASGI app: POST /jobs here, everything else through FastAPI; one access log."""

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self.fastapi = _fastapi(state)
        self._app = AccessLog(self._route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/jobs" and scope["method"] == "POST":
            request = Request(scope, receive)
            try:
                response = await jobs.submit_job(request, self.state)
            except Exception as exc:
                response = await problem_for(request, exc)
            await response(scope, receive, send)
            return
        await self.fastapi(scope, receive, send)


def _fastapi(state: ApiState) -> FastAPI:
    app = FastAPI(
        title="JQS",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # jqs.api.docs serves both pages from files of its own
        redoc_url=None,
    )
    app.state.jqs = state
    routers = (batch.router, jobs.router, queues.router, health.router, docs.router)
    for router in routers:
        app.include_router(router)
    # JQSApp answers POST /jobs before this app; the route here is what another method on
    # /jobs meets, so that its 405 names POST among the allowed methods.
    app.add_api_route("/jobs", _submit_job, methods=["POST"], include_in_schema=False)
    docs.install_files(app)
    # The app's own routes (/openapi.json, POST /jobs, the docs' files) and the routers'.
    routes = [*app.router.routes, *(route for router in routers for route in router.routes)]
    install_problem_handlers(app, routes=routes)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app, state.limits)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _document(app: FastAPI, limits: Limits) -> dict[str, Any]:
    """FastAPI's document for its routes, with POST /jobs, the components that the hand-
    written parts refer to, and the limits this server runs with."""
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    document["paths"].setdefault("/jobs", {})["post"] = jobs.submit_job_operation(limits)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(batch.BATCH_COMPONENTS)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["StorableJSON"] = STORABLE_SCHEMA
    jobs.document_limits(document, limits)
    batch.document_limits(document, limits)
    return document


async def _submit_job(request: Request) -> Response:
    state: ApiState = request.app.state.jqs
    return await jobs.submit_job(request, state)


def create_app(state: ApiState) -> JQSApp:
    """Build the HTTP API around an already started store."""
    return JQSApp(state)
