"""Testing helpers: a clock that moves only when told, and the in-memory store.

    from jqs.testing import ManualClock, MemoryStore

    clock = ManualClock()
    store = MemoryStore(clock)
    ...                                  # start a WorkerPool on the store with this clock
    await clock.advance(31)              # 31 seconds pass at once: leases expire, timers fire

Everything in JQS that waits or stamps a time asks its Clock, so with a ManualClock a test
of lease expiry, backoff or a handler's timeout runs in milliseconds. Sync handlers run in
threads, on real time: a test that counts on when they end should use async ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from jqs.store.memory import MemoryStore

__all__ = ["ManualClock", "MemoryStore"]

# Turns of the event loop given to woken tasks before time moves on: enough for a task to
# react to a timer and start its next wait (the in-memory store never does real I/O).
_SETTLE_TURNS = 20


class _Expiry:
    """The scope of a ManualClock.timeout block."""

    def __init__(self) -> None:
        self.fired = False

    def expired(self) -> bool:
        return self.fired


class ManualClock:
    """A Clock whose time stands still until `advance` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2030, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self._timers: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        """The start time plus the time advanced so far."""
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        """Seconds advanced so far."""
        return self._elapsed

    def _at(self, seconds: float, fire: Callable[[], object]) -> None:
        heapq.heappush(self._timers, (self._elapsed + max(seconds, 0.0), next(self._order), fire))

    async def sleep(self, seconds: float) -> None:
        """Return once the clock has been advanced by `seconds`."""
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        self._at(seconds, wake)
        await woken

    async def wait(self, event: asyncio.Event, within: float | None) -> bool:
        """Wait for the event, or until the clock has been advanced by `within`."""
        if event.is_set():
            return True
        if within is None:
            await event.wait()
            return True
        waiter = asyncio.ensure_future(event.wait())
        self._at(within, waiter.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        if waiter.cancelled():
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise asyncio.CancelledError  # our own caller was cancelled, not the timer
            return False
        return True

    @contextlib.asynccontextmanager
    async def timeout(self, seconds: float | None) -> AsyncIterator[_Expiry]:
        """Cancel the block once the clock has been advanced by `seconds`: TimeoutError."""
        expiry = _Expiry()
        left = False
        async with asyncio.timeout(None) as scope:

            def fire() -> None:
                if not left:
                    expiry.fired = True
                    scope.reschedule(asyncio.get_running_loop().time())

            if seconds is not None:
                self._at(seconds, fire)
            try:
                yield expiry
            finally:
                left = True

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, firing every timer due on the way, in order, and
        letting the tasks they wake run before the next one fires."""
        target = self._elapsed + seconds
        await self._settle()
        while self._timers and self._timers[0][0] <= target:
            due, _, fire = heapq.heappop(self._timers)
            self._elapsed = max(self._elapsed, due)
            fire()
            await self._settle()
        self._elapsed = target
        await self._settle()

    @staticmethod
    async def _settle() -> None:
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)
