"""Every error leaves as application/problem+json: clear detail, no stack trace, no SQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from jqs.api.render import problem
from jqs.errors import DatabaseUnavailable, JobNotFound, StoreError
from jqs.logging import get_logger
from jqs.tasks.names import error_message

log = get_logger(__name__)
# The status the access log records for a request whose client went away before it was
# answered (nginx's "client closed request"); nothing is sent.
CLIENT_CLOSED_REQUEST = 499


class ProblemError(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.headers = headers
        self.extra = extra


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    return ".".join(parts)


async def _on_problem(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem(exc.status, exc.title, exc.detail, headers=exc.headers, **exc.extra)


async def _on_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": _location(err["loc"]), "msg": error_message(err)} for err in exc.errors()]
    detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors) or "invalid request"
    return problem(422, "Unprocessable Content", detail, errors=errors)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    title = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such endpoint; see /docs for the API"
    headers = dict(exc.headers) if exc.headers else None
    return problem(exc.status_code, title, detail, headers=headers)


def _not_allowed(
    routes: Sequence[BaseRoute],
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The 405 answer: its Allow header names every method some route answers at the path
    (Starlette's names only the first matching route's, and /jobs has two)."""

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code != 405:
            return await _on_http(request, exc)
        path = request.url.path
        # Starlette's own (the files' GET and HEAD, say), and every route's at this path.
        told = (exc.headers or {}).get("Allow", "")
        allowed = {method.strip() for method in told.split(",") if method.strip()}
        for route in routes:
            if isinstance(route, Route) and route.path_regex.match(path):
                allowed |= route.methods or set()
        methods = sorted(allowed)
        return problem(
            405,
            HTTPStatus.METHOD_NOT_ALLOWED.phrase,
            f"{request.method} is not allowed here; use {' or '.join(methods)}",
            headers={"Allow": ", ".join(methods)},
        )

    return on_http


async def _on_not_found(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, JobNotFound)
    return problem(404, "Not Found", str(exc))


async def _on_unavailable(_: Request, exc: Exception) -> Response:
    log.warning("database_unavailable", error=str(exc))
    return problem(
        503,
        "Service Unavailable",
        "the database is unavailable; try again shortly",
        headers={"Retry-After": "1"},
    )


async def _on_store(_: Request, exc: Exception) -> Response:
    log.error("store_error", error=str(exc))
    return problem(503, "Service Unavailable", "the database could not complete the request")


async def _on_disconnect(request: Request, _: Exception) -> Response:
    # Not the service's fault, and nobody is left to answer: one line, no traceback.
    log.info("client_disconnected", method=request.method, path=request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _on_unexpected(_: Request, exc: Exception) -> Response:
    log.error("unhandled_error", exc_info=exc)
    return problem(500, "Internal Server Error", "an unexpected error occurred; it has been logged")


# Most specific first: problem_for picks the first class the error is an instance of.
_HANDLERS: tuple[
    tuple[type[Exception], Callable[[Request, Exception], Awaitable[Response]]], ...
] = (
    (ProblemError, _on_problem),
    (RequestValidationError, _on_validation),
    (StarletteHTTPException, _on_http),
    (JobNotFound, _on_not_found),
    (DatabaseUnavailable, _on_unavailable),
    (StoreError, _on_store),
    (ClientDisconnect, _on_disconnect),
    (Exception, _on_unexpected),
)


def install_problem_handlers(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Route every error class to its problem document; `routes`: every route of the app,
    for the Allow header of a 405."""
    for kind, handler in _HANDLERS:
        app.add_exception_handler(kind, handler)
    app.add_exception_handler(StarletteHTTPException, _not_allowed(routes))


async def problem_for(request: Request, exc: Exception) -> Response:
    """The problem document for `exc`, for a route answered outside FastAPI (POST /jobs)."""
    for kind, handler in _HANDLERS:
        if isinstance(exc, kind):
            return await handler(request, exc)
    raise exc  # pragma: no cover - Exception matches everything
