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
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from jqs import __version__
from jqs.api import (
    batch,
    docs,
    events,
    health,
    jobs,
    keys,
    metrics,
    queues,
    webhooks,
    workers,
)
from jqs.api.access_log import AccessLog
from jqs.api.auth import SECURITY_SCHEME, Guard
from jqs.api.openapi import PROBLEM_SCHEMA, STORABLE_SCHEMA, problem_response
from jqs.api.origin import OriginCheck
from jqs.api.problems import install_problem_handlers, problem_for
from jqs.api.state import ApiState, Limits
from jqs.ui import pages as dashboard

DESCRIPTION = (
    "A PostgreSQL-backed job queue service. Submit any JSON object to `POST /jobs`; "
    "`payload.task` names the handler. Delivery is at least once."
)


class JQSApp:
    """The ASGI app: POST /jobs here, everything else through FastAPI; one access log."""

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self.fastapi = _fastapi(state)
        guarded: ASGIApp = Guard(
            self._route,
            state.keyring,
            open_when_empty=state.open_when_empty,
            origins=OriginCheck(state.cors_origins),
        )
        if state.cors_origins:
            guarded = CORSMiddleware(
                guarded,
                allow_origins=list(state.cors_origins),
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
                expose_headers=["Location", "Retry-After", "Idempotent-Replayed"],
                max_age=600,
            )
        self._app = AccessLog(guarded, state.metrics)

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
    routers = (
        batch.router,
        jobs.router,
        events.router,
        queues.router,
        keys.router,
        workers.router,
        metrics.router,
        webhooks.router,
        health.router,
        docs.router,
    )
    for router in routers:
        app.include_router(router)
    # JQSApp answers POST /jobs before this app; the route here is what another method on
    # /jobs meets, so that its 405 names POST among the allowed methods.
    app.add_api_route("/jobs", _submit_job, methods=["POST"], include_in_schema=False)
    docs.install_files(app)
    dashboard.install(app)
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
    schemas.update(keys.NEW_KEY_COMPONENTS)
    schemas.update(webhooks.NEW_WEBHOOK_COMPONENTS)
    schemas.update(workers.WORKER_COMPONENTS)
    jobs.document_limits(document, limits)
    batch.document_limits(document, limits)
    workers.document_limits(document, limits)
    _document_auth(document)
    return document


async def _submit_job(request: Request) -> Response:
    state: ApiState = request.app.state.jqs
    return await jobs.submit_job(request, state)


_AUTH_PROBLEMS = {
    "401": "no API key, or one that is unknown, revoked or expired",
    "403": "the API key lacks the scope, queue or task; or a cross-site request",
    "429": "the API key's rate limit; retry after Retry-After seconds",
}


def _document_auth(schema: dict[str, Any]) -> None:
    """The bearer scheme, and the answers every operation that needs a key may give."""
    schema["components"].setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <secret>`. Each operation "
        "names the scope it needs in `x-scope`.",
    }
    for operations in schema["paths"].values():
        for operation in operations.values():
            if "security" not in operation:
                continue
            for code, description in _AUTH_PROBLEMS.items():
                operation["responses"].setdefault(code, problem_response(int(code), description))


def create_app(state: ApiState) -> JQSApp:
    """Build the HTTP API around an already started store."""
    return JQSApp(state)
