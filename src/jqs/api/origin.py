"""Cross-site requests cannot change state: the Origin check of every non-GET request.

A browser sends `Origin` with every cross-site POST, PATCH or DELETE; a web page cannot
forge or remove it. A request whose Origin is neither the server's own nor an allowed one
(JQS_CORS_ORIGINS) is refused before it reaches a route. Clients that are not browsers
(curl, SDKs, workers) send no Origin and are not affected.

"The server's own" is judged by host (and port, when the Host header names one) against
`Host` and `X-Forwarded-Host`: behind a TLS proxy the browser's origin is https://name while
JQS sees plain HTTP, and some proxies rewrite Host. A browser page cannot set either header
on a cross-site request without a CORS preflight, which only allowed origins pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_port(value: str) -> tuple[str, int | None] | None:
    """("name", port or None) of a Host header value, or None if it is not one."""
    try:
        parts = urlsplit(f"//{value.strip()}")
        return (parts.hostname or "", parts.port)
    except ValueError:
        return None


class OriginCheck:
    """Whether a request's Origin may change state here."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = frozenset(origin.rstrip("/").lower() for origin in allowed)

    def permits(self, origin: str, hosts: Iterable[str]) -> bool:
        """Whether `origin` is allowed, or is this server as named by `hosts` (Host headers)."""
        origin = origin.strip().lower()
        if origin in self.allowed:
            return True
        try:
            parts = urlsplit(origin)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return False  # "null" (sandboxed frames, files) and other schemes
        for host in hosts:
            named = _host_port(host.lower())
            if named is None or named[0] != parts.hostname:
                continue
            if named[1] is None or named[1] == port:
                return True
        return False
