"""QueueBounds: refuse jobs for a queue that holds its `max_queued` queued jobs (429).

Checked without a query per request: a bound checked inside every INSERT would cost every
submission, bounded queue or not. Instead each API process recounts the bounded queues'
queued jobs every `interval` seconds (jqs.port Queues.queue_depths: one statement,
each count stopping at its bound) and adds the jobs it accepts itself in between. A queue
without a bound costs one dictionary lookup.

The bound is soft. One process never takes a queue past it: it counts the jobs it has
admitted until a count is sure to include them. With several API processes, a queue can
exceed it by what the others accept within one interval plus the time of a count, and holds
at most their number times the bound (each stops at the bound by its own count).
Jobs that come back to `queued` (retries, rescues, `POST /jobs/{id}/retry`) are not
refused: they are in the queue already.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass

from jqs.api.problems import ProblemError
from jqs.clock import Clock, SystemClock
from jqs.errors import StoreError
from jqs.logging import get_logger
from jqs.port import Queues
from jqs.service import LoopService

log = get_logger(__name__)

DEFAULT_INTERVAL = 1.0


@dataclass(slots=True)
class _Depth:
    """A bounded queue as this process sees it."""

    bound: int
    counted: int  # queued jobs, as the last count saw them
    pending: int = 0  # admitted here, their INSERT not finished
    finished: int = 0  # admitted here, their INSERT finished since the last count began

    def holds(self) -> int:
        # Jobs finished during a count may be in it as well: counted twice until the next
        # count, never missed.
        return self.counted + self.pending + self.finished


class QueueBounds(LoopService):
    """The bounded queues' depths, recounted every `interval` seconds."""

    name = "queue-bounds"

    def __init__(
        self, store: Queues, *, interval: float = DEFAULT_INTERVAL, clock: Clock | None = None
    ) -> None:
        self._store = store
        self._interval = interval
        self._clock = clock or SystemClock()
        self._depths: dict[str, _Depth] = {}
        self._counting = asyncio.Lock()  # one count at a time: each starts from the last
        self.retry_after = max(1, math.ceil(interval))

    def admit(self, queue: str, count: int = 1) -> bool:
        """Count `count` new jobs for `queue`, or raise the 429 when they do not fit.

        True: they were counted, and the caller must `settle` them once their INSERT has
        finished, whether it succeeded or not. False: the queue has no bound.
        """
        depth = self._depths.get(queue)
        if depth is None:
            return False
        self._refuse_unless_room(queue, depth, count)
        depth.pending += count
        return True

    def admit_all(self, counts: Mapping[str, int]) -> bool:
        """`admit` for jobs of several queues, all or none."""
        bounded = False
        for queue, count in counts.items():
            depth = self._depths.get(queue)
            if depth is not None:
                self._refuse_unless_room(queue, depth, count)
                bounded = True
        if bounded:
            for queue, count in counts.items():
                depth = self._depths.get(queue)
                if depth is not None:
                    depth.pending += count
        return bounded

    def settle(self, queue: str, count: int = 1) -> None:
        """The INSERT of `count` admitted jobs has finished (or failed)."""
        depth = self._depths.get(queue)
        if depth is not None:
            depth.pending = max(depth.pending - count, 0)
            depth.finished += count

    def settle_all(self, counts: Mapping[str, int]) -> None:
        """`settle` for jobs of several queues."""
        for queue, count in counts.items():
            self.settle(queue, count)

    def _refuse_unless_room(self, queue: str, depth: _Depth, count: int) -> None:
        holds = depth.holds()
        if holds + count <= depth.bound:
            return
        bound = depth.bound
        room = max(bound - holds, 0)
        if room == 0:
            detail = f"queue {queue!r} is full: it holds its max_queued of {bound} queued jobs"
        else:
            detail = (
                f"queue {queue!r} has room for {room} more queued jobs (max_queued {bound}), "
                f"not {count}; send fewer"
            )
        raise ProblemError(
            429,
            f"{detail}; retry after {self.retry_after} s, once workers have taken some",
            headers={"Retry-After": str(self.retry_after)},
            queue=queue,
            max_queued=bound,
        )

    async def refresh(self) -> None:
        """Recount the bounded queues now (a changed bound shows at once in this process)."""
        async with self._counting:
            # Jobs that finish their INSERT from here on may or may not be in the count.
            marks = {name: depth.finished for name, depth in self._depths.items()}
            counted = await self._store.queue_depths()
            depths: dict[str, _Depth] = {}
            for row in counted:
                depth = _Depth(row.max_queued, row.queued)
                old = self._depths.get(row.name)
                if old is not None:
                    depth.pending = old.pending
                    depth.finished = max(old.finished - marks.get(row.name, 0), 0)
                depths[row.name] = depth
            self._depths = depths

    async def refresh_quietly(self) -> None:
        """`refresh`, keeping the last counts if the store cannot answer."""
        try:
            await self.refresh()
        except StoreError as exc:
            log.warning("queue_bounds_unknown", error=str(exc))

    async def start(self) -> None:
        """Count once before the API answers, then every `interval` seconds."""
        if self._task is None:
            await self.refresh_quietly()
        await super().start()

    async def _loop(self) -> None:
        while True:
            await self._clock.sleep(self._interval)
            await self.refresh_quietly()
