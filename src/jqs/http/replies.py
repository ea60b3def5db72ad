"""Whole HTTP answers written straight to a socket, before or instead of the app.

They go out where there is no request the app could answer (a connection over the cap,
headers too large or too slow), so they are prepared bytes in the app's problem+json shape.
"""

from __future__ import annotations

import orjson


def _reply(status: int, title: str, detail: str, *, retry_after: int | None = None) -> bytes:
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    head = [
        f"HTTP/1.1 {status} {title}",
        "content-type: application/problem+json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


def too_many_connections() -> bytes:
    """503 for a connection past the cap."""
    return _reply(
        503,
        "Service Unavailable",
        "the server has too many open connections; retry shortly",
        retry_after=1,
    )


def headers_too_large(limit: int) -> bytes:
    """431 for a request whose request line and headers exceed `limit` bytes."""
    return _reply(
        431,
        "Request Header Fields Too Large",
        f"the request line and headers must fit in {limit} bytes",
    )


def headers_too_slow(seconds: float) -> bytes:
    """408 for a request whose headers did not arrive in time."""
    return _reply(
        408,
        "Request Timeout",
        f"the request line and headers must arrive within {seconds:g} seconds",
    )
