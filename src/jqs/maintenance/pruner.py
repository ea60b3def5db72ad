"""Pruner: deletes finished jobs older than the retention, in bounded batches."""

from __future__ import annotations

from jqs.clock import Clock
from jqs.logging import get_logger
from jqs.maintenance.periodic import Periodic
from jqs.port import Maintenance, PruneParams

log = get_logger(__name__)

# After a round that left old jobs behind, the next starts this soon, not an interval later.
BACKLOG_PAUSE = 1.0


class Pruner(Periodic):
    """Every `interval` seconds, deletes jobs finished more than `retention` seconds ago.

    At most `batch * max_batches` rows per round, each batch its own transaction, so one
    round never holds locks or I/O for long. A round that stops at its bound with old jobs
    left starts again after BACKLOG_PAUSE: jobs finishing faster than one round an interval
    deletes would otherwise pile up for good. One process at a time does it.
    """

    def __init__(
        self,
        store: Maintenance,
        *,
        retention: float,
        interval: float = 60.0,
        batch: int = 1000,
        max_batches: int = 20,
        clock: Clock | None = None,
    ) -> None:
        super().__init__("pruner", interval, self._round, clock=clock)
        self._store = store
        self._retention = retention
        self._batch = batch
        self._max_batches = max_batches

    async def _round(self) -> float | None:
        deleted = await self.prune_once()
        return BACKLOG_PAUSE if deleted >= self._batch * self._max_batches else None

    async def prune_once(self) -> int:
        """One round; returns how many jobs it deleted."""
        deleted = 0
        for _ in range(self._max_batches):
            n = await self._store.prune(PruneParams(self._retention, self._batch))
            deleted += n
            if n < self._batch:
                break
        if deleted:
            log.info("jobs_pruned", deleted=deleted, retention_seconds=self._retention)
        return deleted
