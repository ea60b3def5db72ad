"""Where the server is, which key to send, and how hard to try: from arguments or the
environment (JQS_URL, JQS_API_KEY)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx

from jqs.client.version import VERSION

DEFAULT_URL = "http://127.0.0.1:8080"
USER_AGENT = f"jqs-client/{VERSION}"
# A connection idle this long is closed, not reused: well below the keep-alive timeout of
# JQS (JQS_KEEP_ALIVE_TIMEOUT, 5 s by default) and of common proxies, so that a request is
# never sent on a connection the server is closing at that moment, which would fail a
# request that cannot safely be sent again.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=2.0)


@dataclass(frozen=True, slots=True)
class Retries:
    """How 429 and 503 answers, and connections that fail, are tried again.

    At most `attempts` retries; each waits what the server's Retry-After says, else
    `backoff` seconds doubled each time; a wait longer than `max_wait` is not waited out:
    the error is raised instead.
    """

    attempts: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0

    def delay(self, retry: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry number `retry` (0-based); None: give up."""
        if retry >= self.attempts:
            return None
        wait = retry_after if retry_after is not None else self.backoff * (2**retry)
        return wait if wait <= self.max_wait else None


NO_RETRIES = Retries(attempts=0)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The client's settings; `from_env` fills in what is not given."""

    url: str = DEFAULT_URL
    api_key: str | None = None
    timeout: float = 30.0
    retries: Retries = Retries()

    @classmethod
    def from_env(
        cls,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: Retries | None = None,
    ) -> ClientConfig:
        """The arguments given, else JQS_URL and JQS_API_KEY, else the defaults."""
        url = url or os.environ.get("JQS_URL", "").strip() or DEFAULT_URL
        api_key = api_key or os.environ.get("JQS_API_KEY", "").strip() or None
        return cls(url.rstrip("/"), api_key, timeout, retries or Retries())

    def headers(self) -> dict[str, str]:
        """What every request carries."""
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers
