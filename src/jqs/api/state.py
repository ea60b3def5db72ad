"""What the HTTP layer needs from the rest of the process, passed in by the composition root."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from fastapi import Request

from jqs.api.bounds import QueueBounds
from jqs.api.serving import ServedQueues
from jqs.auth.keyring import KeyRing
from jqs.batching import Batcher
from jqs.errors import JobNotFound
from jqs.events import EventFeed
from jqs.metrics import Exposition, Metrics, NoMetrics
from jqs.models import Inserted, Job, JobStatus, NewJob
from jqs.netguard import DestinationPolicy, Resolver, system_resolver
from jqs.port import Dashboard, Events, Jobs, Keys, Queues, Webhooks
from jqs.remote import RemoteWorkers
from jqs.tasks.defaults import JobDefaults
from jqs.tasks.registry import TaskRegistry
from jqs.tracing import Tracing


class ApiStore(Jobs, Queues, Keys, Events, Dashboard, Protocol):
    """The parts of the store the API (and its dashboard, jqs.ui) uses."""


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


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """SSE streams: a keep-alive comment after `keepalive` seconds without an event; each
    stream ends after `max_duration` seconds (its client resumes with Last-Event-ID)."""

    keepalive: float = 15.0
    max_duration: float = 3600.0


def _nothing() -> None:
    pass


@dataclass(frozen=True, slots=True)
class WebhookApi:
    """What the webhook routes and callback URLs need: the store's webhook part, the SSRF
    policy URLs are checked against, how long a rotated secret keeps signing, and a hook
    that wakes this process's dispatcher when a subscription or callback is made."""

    store: Webhooks
    policy: DestinationPolicy = field(default_factory=DestinationPolicy)
    rotation_overlap: float = 86_400.0
    on_new: Callable[[], None] = _nothing
    resolver: Resolver = system_resolver


@dataclass(slots=True)
class ApiState:
    """The store, limits, and a hook called after each enqueue (wakes local workers)."""

    store: ApiStore
    limits: Limits = field(default_factory=Limits)
    defaults: JobDefaults = field(default_factory=lambda: JobDefaults(TaskRegistry()))
    on_enqueue: Callable[[str], None] = lambda queue: None
    served: ServedQueues | None = None  # which queues live workers serve
    bounds: QueueBounds | None = None  # the queues' max_queued, as last counted
    keyring: KeyRing | None = None  # None: authentication is off
    open_when_empty: bool = False  # anonymous while no key exists (a loopback address)
    cors_origins: tuple[str, ...] = ()  # other origins whose pages may call the API
    remote: RemoteWorkers | None = None  # the HTTP worker protocol; None: not served
    shutting_down: bool = False
    # What `?wait` and the SSE streams wait on (the composition root wakes it; a state built
    # without one gets its own, which reads the log only by its poll): see `events`.
    feed: EventFeed | None = None
    streams: StreamSettings = field(default_factory=StreamSettings)
    metrics: Metrics = field(default_factory=NoMetrics)  # what this process counts
    exposition: Exposition | None = None  # /metrics; None: JQS_METRICS=false
    tracing: Tracing = field(default_factory=Tracing)
    webhooks: WebhookApi | None = None  # None: this store has no webhooks (503)
    # Concurrent POST /jobs without an idempotency key share one INSERT and one COMMIT.
    inserts: Batcher[NewJob, Inserted] = field(init=False)
    # Waits read their jobs together: a batch of ends wakes its waiters all at once.
    job_reads: Batcher[int, Job | None] = field(init=False)

    def __post_init__(self) -> None:
        self.inserts = Batcher(self._insert_and_wake)
        self.job_reads = Batcher(self._read_jobs)
        if self.feed is None:
            self.feed = EventFeed(self.store)

    def events(self) -> EventFeed:
        """The process's event feed."""
        assert self.feed is not None  # made in __post_init__
        return self.feed

    async def _insert_and_wake(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        created = await self.store.insert(jobs)
        for job, new in zip(jobs, created, strict=True):
            self.metrics.enqueued(job.options.queue, new.task)
        # Wake the local workers before the waiting requests resume: their claim is on the
        # wire before the answers are built and written, not after.
        for queue in {job.options.queue for job in jobs}:
            self.on_enqueue(queue)
        return created

    async def read_job(self, job_id: int) -> Job:
        """The job with this id, read with those that other requests read at the same time
        (one statement and one connection for all); JobNotFound when there is none."""
        job = await self.job_reads.submit(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def _read_jobs(self, job_ids: Sequence[int]) -> list[Job | None]:
        found = {job.id: job for job in await self.store.get_many(job_ids)}
        return [found.get(job_id) for job_id in job_ids]

    def shown(self, job: Job) -> Job:
        """The job as answered: a queued job says whether it waits for a worker."""
        if job.status is JobStatus.QUEUED and self.waits(job.queue):
            return replace(job, waiting_for_worker=True)
        return job

    def waits(self, queue: str) -> bool:
        """Whether no live worker serves `queue`, as last looked."""
        return self.served is not None and self.served.unserved(queue)


async def api_state(request: Request) -> ApiState:
    """FastAPI dependency: the state this app was built with (async: a sync dependency
    would cost a trip to the thread pool on every request)."""
    state: ApiState = request.app.state.jqs
    return state
