"""Workers elsewhere: what the HTTP worker protocol (jqs.api.workers) needs of the process.

`ClaimHub` (hub.py) hands out jobs, long-polling on the process's signals of new work;
`Ends` (ends.py) writes the outcomes workers report, as an in-process worker's are written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from jqs.port import JobQueue, WorkerBeat
from jqs.remote.ends import Ends
from jqs.remote.hub import ClaimHub

__all__ = ["ClaimHub", "Ends", "RemoteWorkers"]

# A worker that claims often is written down at most this often (its row says it is alive
# for WORKER_SILENCE_SECONDS): a write per claim would cost a commit on the claim's path.
BEAT_EVERY = 10.0


@dataclass(frozen=True, slots=True)
class RemoteWorkers:
    """The parts the worker protocol's routes use, and the lease they grant by default."""

    queue: JobQueue
    hub: ClaimHub
    ends: Ends
    lease_seconds: float = 30.0
    _beats: dict[str, tuple[float, WorkerBeat]] = field(default_factory=dict)

    async def beat(self, beat: WorkerBeat, *, always: bool = False) -> None:
        """Record that a worker is alive, unless this process did so lately and only its
        counts of running jobs and slots changed since (`always`: record it anyway)."""
        now = time.monotonic()
        last = self._beats.get(beat.id)
        if (
            not always
            and last is not None
            and now - last[0] < BEAT_EVERY
            # A claim states its max_jobs as the concurrency, which changes from claim to
            # claim with a busy worker's free slots.
            and replace(last[1], running=beat.running, concurrency=beat.concurrency) == beat
        ):
            return
        await self.queue.worker_beat(beat)
        if len(self._beats) > 10_000:  # workers come and go: forget the oldest
            self._beats.clear()
        self._beats[beat.id] = (now, beat)

    async def gone(self, worker_id: str) -> None:
        """Forget a worker that stopped."""
        self._beats.pop(worker_id, None)
        await self.queue.worker_gone(worker_id)
