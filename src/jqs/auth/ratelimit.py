"""Per-key request rate limits: a token bucket per key, in this process."""

from __future__ import annotations

import math
from collections.abc import Callable


class RateLimiter:
    """Token buckets by key id: `rate` requests per second, bursts of up to max(1, rate).

    Per process, not across the cluster: a key allowed 10 per second may make 10 per second
    to each JQS process behind a load balancer.
    """

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # key id: (tokens, at)

    def wait(self, key_id: str, rate: float) -> float:
        """0 and one token spent if the key may go now, else the seconds until it may."""
        now = self._monotonic()
        burst = max(1.0, rate)
        tokens, at = self._buckets.get(key_id, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key_id] = (tokens, now)
        return (1.0 - tokens) / rate


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
