"""LoopService: a long-running part built around one asyncio task, with idempotent
start()/stop() (stopping one that never started is fine)."""

from __future__ import annotations

import asyncio
import contextlib


class LoopService:
    """Subclasses implement `_loop`; start() runs it as a task, stop() cancels it."""

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
