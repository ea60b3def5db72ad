"""File descriptors: raise the soft limit, and size the connection cap below it."""

from __future__ import annotations

import contextlib
import resource
from dataclasses import dataclass

# Descriptors kept out of the cap: database connections, the LISTEN connection, log files,
# the event loop's own, and connections being turned away with a 503 (see protocol.py).
RESERVED = 512
# The most we ask for when the hard limit is unlimited (Linux refuses more than nr_open).
_UNLIMITED_ASK = 1 << 20


@dataclass(frozen=True)
class FdLimits:
    """RLIMIT_NOFILE before and after start-up raised the soft limit."""

    soft_before: int
    soft: int
    hard: int  # resource.RLIM_INFINITY (-1) when unlimited


def raise_soft_limit() -> FdLimits:
    """Raise the soft RLIMIT_NOFILE to the hard limit (as far as the kernel allows)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = _UNLIMITED_ASK if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < want:
        # Refused when nr_open is below the ask: keep what we have, and cap to it.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    now, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return FdLimits(soft_before=soft, soft=now, hard=hard)


def connection_cap(wanted: int, soft_limit: int) -> int:
    """At most `wanted` connections, and never so many that descriptors run out."""
    if soft_limit == resource.RLIM_INFINITY:
        return wanted
    room = max(soft_limit - RESERVED, soft_limit // 2, 1)
    return max(1, min(wanted, room))
