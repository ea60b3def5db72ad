"""Clocks: the one place JQS's workers and services read the time and wait for it.

Everything that waits (the claim loop's poll, heartbeats, maintenance rounds, handler
timeouts) or stamps a time (leases and rate limits in the in-memory store, cron) asks a
`Clock`. Production uses `SystemClock`; tests use `ManualClock` (jqs.testing), whose time
only moves when the test says so, so lease expiry, backoff and prefetch are tested in
milliseconds without sleeping on the wall clock.

PostgreSQL keeps its own clock (`now()`): every process agrees on it, so the database store
stamps jobs with it. Its statements that read the time take an optional `now` for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """What a part of JQS may ask about time."""

    def now(self) -> datetime:
        """The wall-clock time, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        ...

    async def wait(self, event: asyncio.Event, within: float | None) -> bool:
        """Wait until `event` is set (True) or `within` seconds pass (False)."""
        ...

    def timeout(self, seconds: float | None) -> contextlib.AbstractAsyncContextManager[Deadline]:
        """Cancel the block after `seconds` and raise TimeoutError (None: never)."""
        ...


class Deadline(Protocol):
    """The scope of a `Clock.timeout` block."""

    def expired(self) -> bool:
        """Whether this deadline (not some other) ended the block."""
        ...


class SystemClock:
    """The real time, and asyncio's own waiting."""

    def now(self) -> datetime:
        """The wall-clock time in UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """time.monotonic()."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """asyncio.sleep."""
        await asyncio.sleep(seconds)

    async def wait(self, event: asyncio.Event, within: float | None) -> bool:
        """Wait for the event, at most `within` seconds."""
        if event.is_set():
            return True
        # asyncio.timeout, not wait_for: wait_for runs the wait as a task of its own, and a
        # wake-up then takes three turns of the event loop to arrive, each behind whatever
        # else is ready. The claim loop waits here for every enqueue.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await event.wait()
                return True
        return False

    def timeout(self, seconds: float | None) -> asyncio.Timeout:
        """asyncio.timeout."""
        return asyncio.timeout(seconds)
