"""Rescuer: brings back jobs whose worker stopped heartbeating (crashed, killed, stalled).

Every process runs one; the store lets one of them do the work per round (a
transaction-scoped advisory try-lock on PostgreSQL), so they never fight. It also forgets
workers that have been silent for long (their jobs' leases have long expired by then).
"""

from __future__ import annotations

from collections.abc import Callable

from jqs.clock import Clock
from jqs.logging import get_logger
from jqs.maintenance.periodic import Periodic
from jqs.metrics import Metrics, NoMetrics
from jqs.models import JobStatus
from jqs.port import WORKER_SILENCE_SECONDS, Maintenance, RescueParams

log = get_logger(__name__)


class Rescuer(Periodic):
    """Every `interval` seconds, returns expired leases to the queue (or ends them)."""

    def __init__(
        self,
        store: Maintenance,
        *,
        interval: float = 5.0,
        batch: int = 500,
        on_requeue: Callable[[str], None] = lambda queue: None,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__("rescuer", interval, self._round, clock=clock)
        self._metrics = metrics or NoMetrics()
        self._store = store
        self._batch = batch
        self._on_requeue = on_requeue

    async def _round(self) -> None:
        await self.rescue_once()
        await self._store.workers_forget(10 * WORKER_SILENCE_SECONDS)

    async def rescue_once(self) -> int:
        """One round; returns how many jobs it moved."""
        moved = 0
        while True:
            rescued = await self._store.rescue(RescueParams(limit=self._batch))
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
                self._metrics.rescued(job.queue, job.status.value)
                if job.status is JobStatus.QUEUED:
                    self._on_requeue(job.queue)
            moved += len(rescued)
            if len(rescued) < self._batch:
                return moved
