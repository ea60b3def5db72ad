"""Periodic: run an async action again and again, surviving its failures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from jqs.clock import Clock, SystemClock
from jqs.logging import get_logger
from jqs.service import LoopService

log = get_logger(__name__)

# The action may return how long to wait before the next round (None: the interval).
Action = Callable[[], Awaitable[float | None]]


class Periodic(LoopService):
    """`action` every `interval` seconds until stopped. Idempotent start/stop."""

    def __init__(
        self, name: str, interval: float, action: Action, *, clock: Clock | None = None
    ) -> None:
        self.name = name
        self._interval = interval
        self._action = action
        self._clock = clock or SystemClock()

    async def _loop(self) -> None:
        while True:
            delay: float | None = None
            try:
                delay = await self._action()
            except Exception as exc:  # a failed round must not end the service
                log.warning("maintenance_round_failed", service=self.name, error=repr(exc))
            await self._clock.sleep(self._interval if delay is None else delay)
