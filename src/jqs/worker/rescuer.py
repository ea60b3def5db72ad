"""Rescuer: brings back jobs whose worker stopped heartbeating (crashed, killed, stalled).

Every process runs one; a transaction-scoped advisory try-lock in the rescue statement makes
one of them do the work per round, so they never fight.
"""

from __future__ import annotations

from collections.abc import Callable

from jqs.logging import get_logger
from jqs.models import JobStatus
from jqs.store import JobStore
from jqs.worker.periodic import Periodic

log = get_logger(__name__)


class Rescuer(Periodic):
    """Every `interval` seconds, returns expired leases to the queue (or ends them)."""

    def __init__(
        self,
        store: JobStore,
        *,
        interval: float = 5.0,
        batch: int = 500,
        on_requeue: Callable[[str], None] = lambda queue: None,
    ) -> None:
        super().__init__("rescuer", interval, self._round)
        self._store = store
        self._batch = batch
        self._on_requeue = on_requeue

    async def _round(self) -> None:
        await self.rescue_once()

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
                if job.status is JobStatus.QUEUED:
                    self._on_requeue(job.queue)
            moved += len(rescued)
            if len(rescued) < self._batch:
                return moved
