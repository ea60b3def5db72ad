"""ServedQueues: which queues a live worker serves, as the API last looked.

A job sent to a queue that no worker serves would wait without a word; the API says so in
the job (`waiting_for_worker`). Workers say they are alive in the store (jqs.port
WorkerBeat); this service reads that list every `interval` seconds, so answering a request
never waits for it.
"""

from __future__ import annotations

from collections.abc import Iterable

from jqs.clock import Clock, SystemClock
from jqs.errors import StoreError
from jqs.logging import get_logger
from jqs.port import Queues
from jqs.service import LoopService

log = get_logger(__name__)


class ServedQueues(LoopService):
    """The queues live workers serve, re-read every `interval` seconds."""

    name = "served-queues"

    def __init__(
        self,
        store: Queues,
        *,
        local: Iterable[str] = (),
        interval: float = 2.0,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._local = frozenset(local)  # served by this process's own workers
        self._interval = interval
        self._clock = clock or SystemClock()
        self._queues: frozenset[str] | None = None  # None: not known yet

    def unserved(self, queue: str) -> bool:
        """Whether no live worker serves `queue` (False while that is not known)."""
        if queue in self._local:
            return False
        return self._queues is not None and queue not in self._queues

    async def refresh(self) -> None:
        """Read the live workers' queues now."""
        workers = await self._store.workers()
        self._queues = frozenset(name for worker in workers for name in worker.queues)

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except StoreError as exc:  # keep the last answer; the next round tries again
                log.warning("served_queues_unknown", error=str(exc))
            await self._clock.sleep(self._interval)
