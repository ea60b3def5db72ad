"""Services: the long-running parts of a JQS process, started and stopped the same way.

A service's start() and stop() are idempotent, and stop() before start() is fine. The
composition root (jqs.runtime) starts them in order and stops them in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol


class Service(Protocol):
    """A long-running part with idempotent start and stop."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class LoopService:
    """A service built around one asyncio task: subclasses implement `_loop`."""

    name = "service"
    _task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        """Begin. Idempotent."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"jqs-{self.name}")

    async def stop(self) -> None:
        """End; fine if never started."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
