"""What the HTTP layer needs from the rest of the process, passed in by the composition root."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fastapi import Request

from jqs.batching import Batcher
from jqs.jsonutil import RawJSON
from jqs.models import EnqueueOptions, NewJob
from jqs.store import JobStore, QueueStore
from jqs.tasks.defaults import JobDefaults
from jqs.tasks.registry import TaskRegistry


@dataclass(slots=True)
class Limits:
    """Input limits of the API."""

    max_body_bytes: int = 1_048_576
    max_json_depth: int = 64
    page_size_max: int = 100
    batch_max_jobs: int = 1000

    @property
    def batch_max_bytes(self) -> int:
        """A batch may be as large as its largest allowed jobs, within reason."""
        return min(self.max_body_bytes * 16, 64 * 1024 * 1024)


@dataclass(slots=True)
class ApiState:
    """The job store, limits, and a hook called after each enqueue (wakes local workers)."""

    jobs: JobStore
    queues: QueueStore | None = None
    limits: Limits = field(default_factory=Limits)
    defaults: JobDefaults = field(default_factory=lambda: JobDefaults(TaskRegistry()))
    on_enqueue: Callable[[str], None] = lambda queue: None
    shutting_down: bool = False
    # Concurrent POST /jobs without an idempotency key share one INSERT and one COMMIT.
    inserts: Batcher[tuple[RawJSON, EnqueueOptions], NewJob] = field(init=False)

    def __post_init__(self) -> None:
        self.inserts = Batcher(self._insert_and_wake)

    async def _insert_and_wake(
        self, jobs: Sequence[tuple[RawJSON, EnqueueOptions]]
    ) -> list[NewJob]:
        created = await self.jobs.insert_many(jobs)
        # Wake the local workers before the waiting requests resume: their claim is on the
        # wire before the answers are built and written, not after (at 200 jobs/s that put
        # 0.36 ms between the commit and the claim).
        for queue in {options.queue for _, options in jobs}:
            self.on_enqueue(queue)
        return created


async def api_state(request: Request) -> ApiState:
    """FastAPI dependency: the state this app was built with (async: a sync dependency
    would cost a trip to the thread pool on every request)."""
    state: ApiState = request.app.state.jqs
    return state
