"""OutcomeWriter: the one way an attempt's end reaches the store.

Completed, retried, failed and cancelled attempts all go through `write`, and whatever ends
while one batch is being written goes out with the next (jqs.batching), as one statement:
a lone job is written at once, a busy pool writes hundreds per round trip. Each write is
fenced by the attempt's lease, so a worker that lost its lease changes nothing.

While the database is briefly unreachable, a batch is tried again with backoff for up to
`persist_for` seconds; after that its attempts are left to their leases, which bring the
jobs back to run again. Nothing is lost silently: each such end is logged.
"""

from __future__ import annotations

from collections.abc import Sequence

from jqs.batching import Batcher
from jqs.clock import Clock
from jqs.errors import DatabaseUnavailable, StoreError
from jqs.logging import get_logger
from jqs.models import Lease
from jqs.outcome import Final
from jqs.store.port import Finish, JobQueue

log = get_logger(__name__)


class OutcomeWriter:
    """Writes attempts' ends in batches; says of each: written, lease lost, or not saved."""

    def __init__(
        self, queue: JobQueue, *, clock: Clock, persist_for: float, max_batch: int = 500
    ) -> None:
        self._queue = queue
        self._clock = clock
        self._persist_for = persist_for
        self._batcher: Batcher[Finish, bool | None] = Batcher(self._flush, max_size=max_batch)

    async def write(self, lease: Lease, outcome: Final) -> bool | None:
        """True once written; False when the lease was lost (another worker owns the job);
        None when the database stayed away (logged; the lease brings the job back)."""
        return await self._batcher.submit(Finish(lease, outcome))

    async def _flush(self, finishes: Sequence[Finish]) -> Sequence[bool | None]:
        deadline = self._clock.monotonic() + self._persist_for
        delay = 0.05
        while True:
            try:
                return await self._queue.finish(finishes)
            except DatabaseUnavailable as exc:
                if self._clock.monotonic() + delay > deadline:
                    log.error("job_outcome_not_saved", error=str(exc), jobs=len(finishes))
                    return [None] * len(finishes)
                log.warning("job_outcome_retrying", error=str(exc), retry_in=delay)
                await self._clock.sleep(delay)
                delay = min(delay * 2, 2.0)
            except StoreError as exc:
                log.error("job_outcome_not_saved", error=str(exc), jobs=len(finishes))
                return [None] * len(finishes)
