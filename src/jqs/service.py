"""Services: the long-running parts of a JQS process, started and stopped the same way.

A service's start() and stop() are idempotent, and stop() before start() is fine. The
composition root (jqs.runtime) starts them in order and stops them in reverse.

A loop service's loop handles the failures it expects (a lost connection, a standby where a
primary was). Should one escape anyway, the service logs it and starts its loop again after
a pause: a process whose listener or dispatcher died silently would look alive and do
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from jqs.logging import get_logger

log = get_logger(__name__)

RESTART_FIRST = 1.0  # seconds before a failed loop starts again
RESTART_MOST = 30.0  # the pause doubles per failure in a row, up to this
# A loop that ran this long before failing counts as healthy: its next pause is the first.
HEALTHY_SECONDS = 60.0


class Service(Protocol):
    """A long-running part with idempotent start and stop."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class LoopService:
    """A service built around one asyncio task: subclasses implement `_loop`."""

    name = "service"
    _task: asyncio.Task[None] | None = None
    restarts = 0  # how many times the loop failed and was started again

    async def _loop(self) -> None:
        raise NotImplementedError

    async def _supervised(self) -> None:
        pause = RESTART_FIRST
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                await self._loop()
                return
            except Exception:
                if loop.time() - began >= HEALTHY_SECONDS:
                    pause = RESTART_FIRST
                self.restarts += 1
                log.exception("service_failed", service=self.name, restart_in=pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESTART_MOST)

    async def start(self) -> None:
        """Begin. Idempotent."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervised(), name=f"jqs-{self.name}")

    async def stop(self) -> None:
        """End; fine if never started."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
