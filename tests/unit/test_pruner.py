"""The pruner's pacing: a backlog of old jobs is worked off round after round, promptly."""

from __future__ import annotations

from typing import Any

from jqs.maintenance.pruner import BACKLOG_PAUSE, Pruner
from jqs.port import PruneParams
from jqs.testing import ManualClock


class OldJobs:
    """Only what the pruner asks of a store: old finished jobs, deleted `limit` at a time."""

    def __init__(self, count: int) -> None:
        self.left = count

    async def prune(self, params: PruneParams) -> int:
        deleted = min(self.left, params.limit)
        self.left -= deleted
        return deleted


async def test_a_backlog_is_pruned_in_rounds_a_pause_apart_not_an_interval() -> None:
    clock = ManualClock()
    old = OldJobs(95)
    store: Any = old
    pruner = Pruner(store, retention=60, interval=3600, batch=10, max_batches=3, clock=clock)
    await pruner.start()
    try:
        await clock.advance(0)
        assert old.left == 65, "a round stops at its bound"
        for left in (35, 5, 0):
            await clock.advance(BACKLOG_PAUSE)
            assert old.left == left
        old.left = 50  # more jobs grow old: the backlog was gone, so the interval holds
        await clock.advance(3600 - 1)
        assert old.left == 50
        await clock.advance(1)
        assert old.left == 20
        await clock.advance(BACKLOG_PAUSE)
        assert old.left == 0
    finally:
        await pruner.stop()
