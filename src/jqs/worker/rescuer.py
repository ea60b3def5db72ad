"""Rescuer: brings back jobs whose worker stopped heartbeating (crashed, killed, stalled).

Every process that runs workers runs one; a transaction-scoped advisory try-lock in the
rescue statement makes one of them do the work per round, so they never fight.
"""

from __future__ import annotations

import asyncio
import contextlib

from jqs.logging import get_logger
from jqs.store import JobStore

log = get_logger(__name__)


class Rescuer:
    """Every `interval` seconds, returns expired leases to the queue (or ends them)."""

    def __init__(self, store: JobStore, *, interval: float = 5.0, batch: int = 500) -> None:
        self._store = store
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin rescuing. Idempotent."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="jqs-rescuer")

    async def stop(self) -> None:
        """Stop rescuing. Idempotent; fine if never started."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def rescue_once(self) -> int:
        """One round; returns how many jobs it moved."""
        moved = 0
        while True:
            rescued = await self._store.rescue_expired(self._batch)
            for job in rescued:
                log.warning(
                    "job_rescued",
                    job_id=job.id,
                    task=job.task,
                    queue=job.queue,
                    attempt=job.attempt,
                    status=job.status.value,
                    lost_worker=job.worker,
                )
            moved += len(rescued)
            if len(rescued) < self._batch:
                return moved

    async def _loop(self) -> None:
        while True:
            try:
                await self.rescue_once()
            except Exception as exc:  # never let the loop die
                log.warning("rescue_failed", error=repr(exc))
            await asyncio.sleep(self._interval)
