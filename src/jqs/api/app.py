"""The HTTP API: POST /jobs, and FastAPI for every other route.

POST /jobs is the service's hottest path, and FastAPI's layers (routing through included
routers, dependency solving, its middleware) cost more CPU than the route itself; make
bench's single POST row measures the difference (docs/benchmarks.md). So POST /jobs is not
a FastAPI route: `JQSApp` answers it directly, with the same problem documents as every
other route, and its OpenAPI operation (jqs.api.jobs.SUBMIT_JOB_OPERATION) is added to the
document FastAPI generates for the rest. There is one route, one implementation, one doc.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from jqs import __version__
from jqs.api import batch, health, jobs, keys, queues
from jqs.api.access_log import AccessLog
from jqs.api.auth import SECURITY_SCHEME, Guard
from jqs.api.origin import OriginCheck
from jqs.api.problems import install_problem_handlers, problem_for
from jqs.api.state import ApiState

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
        self._app = AccessLog(guarded)

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
    app = FastAPI(title="JQS", version=__version__, description=DESCRIPTION)
    app.state.jqs = state
    install_problem_handlers(app)
    app.include_router(batch.router)  # before /jobs/{job_id}, which would shadow it
    app.include_router(jobs.router)
    app.include_router(queues.router)
    app.include_router(keys.router)
    app.include_router(health.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema["paths"].setdefault("/jobs", {})["post"] = jobs.SUBMIT_JOB_OPERATION
            schema["components"]["schemas"].update(batch.BATCH_COMPONENTS)
            schema["components"]["schemas"].update(keys.NEW_KEY_COMPONENTS)
            _document_auth(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


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
                operation["responses"].setdefault(
                    code, {"description": description, **jobs.PROBLEM_CONTENT}
                )


def create_app(state: ApiState) -> JQSApp:
    """Build the HTTP API around an already started store."""
    return JQSApp(state)
