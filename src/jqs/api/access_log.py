"""One JSON line per HTTP request (health probes left out), on structlog's fast path.

A route may bind fields to the request's line with structlog.contextvars.bind_contextvars:
POST /jobs adds the job it created (job_id, task, queue, status), which makes the line its
enqueue event. The id of the request's API key comes from the ASGI scope (KEY_ID).

This replaces uvicorn's access log: that one goes through stdlib logging, several times the
cost per line, and POST /jobs is the service's hottest path.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jqs.logging import get_logger
from jqs.metrics import Metrics, NoMetrics

log = get_logger("jqs.access")
PROBE_PATHS = frozenset({"/health", "/ready"})
# Where the app puts the id of the request's API key, for this line (never the secret).
KEY_ID = "jqs.key_id"


def _route(scope: Scope) -> str:
    """The path template of the route that answered (a bounded label), else "other"."""
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path_format", None) or getattr(route, "path", "other"))
    if scope["path"] == "/jobs":
        return "/jobs"  # POST /jobs is answered before routing (jqs.api.app)
    return "other"


class AccessLog:
    """ASGI middleware: logs `http_request` with method, path, status_code, duration_ms,
    and records the request's duration by route in the process's metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self._metrics = metrics or NoMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - began
            self._metrics.http(scope["method"], _route(scope), seconds)
            query = scope.get("query_string", b"")
            client = scope.get("client")
            key_id = scope.get(KEY_ID)
            log.info(
                "http_request",
                method=scope["method"],
                path=scope["path"] + ("?" + query.decode("latin-1") if query else ""),
                status_code=status,
                duration_ms=round(seconds * 1000, 3),
                client=f"{client[0]}:{client[1]}" if client else None,
                **({"key_id": key_id} if key_id is not None else {}),
            )
