"""Gauges of the whole deployment, read from the database: every process shows the same
values, so a dashboard takes one process's (max), never their sum.

Read when /metrics is scraped, at most every `max_age` seconds (scrapes in between get the
last reading), from statements that touch only unfinished jobs and the live workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jqs.clock import Clock, SystemClock
from jqs.errors import StoreError
from jqs.logging import get_logger
from jqs.models import QueueActivity, WorkerInfo

log = get_logger(__name__)
# Beyond this many queues the gauges name the busiest; the rest are summed as "other".
QUEUE_SERIES = 200


class ActivitySource(Protocol):
    """The store's part these gauges read."""

    async def queue_activity(self) -> list[QueueActivity]: ...

    async def workers(self) -> list[WorkerInfo]: ...


class ClusterGauges(Collector):
    """jqs_queue_jobs{queue,status}, jqs_queue_oldest_wait_seconds{queue}, jqs_workers."""

    def __init__(
        self, store: ActivitySource, *, max_age: float = 5.0, clock: Clock | None = None
    ) -> None:
        self._store = store
        self._max_age = max_age
        self._clock = clock or SystemClock()
        self._read_at = float("-inf")
        self._queues: list[QueueActivity] = []
        self._workers = 0
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read again unless the last reading is recent (a failed read keeps the last)."""
        async with self._lock:
            if self._clock.monotonic() - self._read_at < self._max_age:
                return
            try:
                self._queues = await self._store.queue_activity()
                self._workers = len(await self._store.workers())
            except StoreError as exc:
                log.warning("metrics_not_read", error=str(exc))
                return
            self._read_at = self._clock.monotonic()

    def collect(self) -> Iterable[Metric]:
        jobs = GaugeMetricFamily(
            "jqs_queue_jobs",
            "Unfinished jobs per queue, across every process (the same value in each).",
            labels=("queue", "status"),
        )
        oldest = GaugeMetricFamily(
            "jqs_queue_oldest_wait_seconds",
            "How long the oldest due queued job of each queue has waited.",
            labels=("queue",),
        )
        busiest = sorted(self._queues, key=lambda q: (-(q.queued + q.running), q.name))
        shown, rest = busiest[:QUEUE_SERIES], busiest[QUEUE_SERIES:]
        for queue in sorted(shown, key=lambda q: q.name):
            jobs.add_metric([queue.name, "queued"], queue.queued)
            jobs.add_metric([queue.name, "processing"], queue.running)
            if queue.oldest_wait_seconds is not None:
                oldest.add_metric([queue.name], queue.oldest_wait_seconds)
        if rest:
            jobs.add_metric(["other", "queued"], sum(q.queued for q in rest))
            jobs.add_metric(["other", "processing"], sum(q.running for q in rest))
        workers = GaugeMetricFamily("jqs_workers", "Live workers, in-process and remote.")
        workers.add_metric([], self._workers)
        return [jobs, oldest, workers]
