"""Periodic: run an async action again and again, surviving its failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from jqs.logging import get_logger
from jqs.service import LoopService

log = get_logger(__name__)

# The action may return how long to wait before the next round (None: the interval).
Action = Callable[[], Awaitable[float | None]]


class Periodic(LoopService):
    """A small service: `action` every `interval` seconds until stopped. Idempotent start/stop."""

    def __init__(self, name: str, interval: float, action: Action) -> None:
        self.name = name
        self._interval = interval
        self._action = action

    async def _loop(self) -> None:
        while True:
            delay: float | None = None
            try:
                delay = await self._action()
            except Exception as exc:  # a failed round must not end the service
                log.warning(f"{self.name}_failed", error=repr(exc))
            await asyncio.sleep(self._interval if delay is None else delay)
