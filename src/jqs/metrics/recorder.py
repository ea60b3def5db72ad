"""What one JQS process counts, in the form Prometheus reads (prometheus-client renders it).

A worker records several values per job, tens of thousands of jobs a second. prometheus-
client's own metric objects take a lock and look up the label set on every call; here a
count is one dict update and a histogram sample one bisect, and prometheus-client builds
the families from those numbers only when /metrics is read (a custom collector). Every
call comes from the event loop's thread, so nothing is shared between threads.

Label values stay bounded whatever clients send: `task` is a registered task name or
"other"; `queue` is one of the first QUEUE_LABELS queue names this process has seen, then
"other"; `route` is a route's path template or "other".
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

QUEUE_LABELS = 100
OTHER = "other"
# Seconds: from a millisecond to a day, for job durations and waits alike.
JOB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 86400)
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


@dataclass(slots=True)
class _Histogram:
    """Counts per bucket (not cumulative), and the sum, of one label set's samples."""

    counts: list[int]
    total: float = 0.0

    def observe(self, bounds: tuple[float, ...], value: float) -> None:
        self.counts[bisect.bisect_left(bounds, value)] += 1
        self.total += value

    def buckets(self, bounds: tuple[float, ...]) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out


@dataclass(slots=True)
class _Histograms:
    bounds: tuple[float, ...]
    series: dict[tuple[str, ...], _Histogram] = field(default_factory=dict)

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        histogram = self.series.get(labels)
        if histogram is None:
            histogram = self.series[labels] = _Histogram([0] * (len(self.bounds) + 1))
        histogram.observe(self.bounds, value)


class Metrics:
    """One process's counters and histograms. `tasks()` names the registered tasks."""

    enabled = True

    def __init__(self, tasks: Callable[[], Iterable[str]] = tuple) -> None:
        self._tasks = tasks
        self._known_tasks: frozenset[str] | None = None
        self._queues: set[str] = set()
        self._enqueued: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._finished: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self._retries: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._rescued: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._deliveries: defaultdict[str, int] = defaultdict(int)
        self._durations = _Histograms(JOB_BUCKETS)
        self._waits = _Histograms(JOB_BUCKETS)
        self._http = _Histograms(HTTP_BUCKETS)

    # Bounded label values

    def _task(self, task: str | None) -> str:
        if self._known_tasks is None:
            self._known_tasks = frozenset(self._tasks())
        return task if task is not None and task in self._known_tasks else OTHER

    def _queue(self, queue: str) -> str:
        if queue in self._queues:
            return queue
        if len(self._queues) < QUEUE_LABELS:
            self._queues.add(queue)
            return queue
        return OTHER

    # Recording

    def enqueued(self, queue: str, task: str | None, count: int = 1) -> None:
        """Jobs this process submitted."""
        self._enqueued[self._queue(queue), self._task(task)] += count

    def finished(
        self, queue: str, task: str | None, status: str, duration: float | None = None
    ) -> None:
        """An attempt this process wrote the end of: completed, failed or cancelled, or
        queued again (a retry); `duration` in seconds when the handler ran here."""
        labels = (self._queue(queue), self._task(task))
        if status == "queued":
            self._retries[labels] += 1
        else:
            self._finished[(*labels, status)] += 1
        if duration is not None:
            self._durations.observe(labels, duration)

    def started(self, queue: str, task: str | None, waited: float) -> None:
        """An attempt started `waited` seconds after its job became due."""
        self._waits.observe((self._queue(queue), self._task(task)), max(waited, 0.0))

    def rescued(self, queue: str, status: str) -> None:
        """A job whose lease expired, brought back by this process (`status`: what it
        became: queued again, or failed or cancelled for good)."""
        self._rescued[self._queue(queue), status] += 1

    def delivery(self, outcome: str) -> None:
        """A webhook delivery attempt's outcome (delivered, failed, gave_up, ...)."""
        self._deliveries[outcome] += 1

    def http(self, method: str, route: str, seconds: float) -> None:
        """One HTTP request, by its route's template."""
        self._http.observe((method, route), seconds)

    # Reading

    def families(self) -> Iterator[Metric]:
        """Everything recorded so far, as Prometheus metric families."""
        yield _counter(
            "jqs_jobs_enqueued",
            "Jobs submitted through this process.",
            ("queue", "task"),
            self._enqueued.items(),
        )
        yield _counter(
            "jqs_jobs_finished",
            "Jobs whose final outcome this process wrote, by status.",
            ("queue", "task", "status"),
            self._finished.items(),
        )
        yield _counter(
            "jqs_job_retries",
            "Failed attempts this process queued to run again.",
            ("queue", "task"),
            self._retries.items(),
        )
        expired = CounterMetricFamily(
            "jqs_leases_expired",
            "Leases that expired (the worker stopped heartbeating) found by this process.",
        )
        expired.add_metric([], sum(self._rescued.values()))
        yield expired
        yield _counter(
            "jqs_jobs_rescued",
            "Jobs with an expired lease that this process brought back, by what they became.",
            ("queue", "status"),
            self._rescued.items(),
        )
        yield _counter(
            "jqs_webhook_deliveries",
            "Webhook delivery attempts made by this process, by outcome.",
            ("outcome",),
            [((k,), v) for k, v in self._deliveries.items()],
        )
        yield _histogram(
            "jqs_job_duration_seconds",
            "How long handlers ran in this process.",
            ("queue", "task"),
            self._durations,
        )
        yield _histogram(
            "jqs_job_queue_wait_seconds",
            "From when a job was due (submitted, or its run_at) to its attempt's start here.",
            ("queue", "task"),
            self._waits,
        )
        yield _histogram(
            "jqs_http_request_duration_seconds",
            "HTTP requests answered by this process, by route.",
            ("method", "route"),
            self._http,
        )


class NoMetrics(Metrics):
    """JQS_METRICS=false: nothing is recorded."""

    enabled = False

    def enqueued(self, queue: str, task: str | None, count: int = 1) -> None:
        pass

    def finished(
        self, queue: str, task: str | None, status: str, duration: float | None = None
    ) -> None:
        pass

    def started(self, queue: str, task: str | None, waited: float) -> None:
        pass

    def rescued(self, queue: str, status: str) -> None:
        pass

    def delivery(self, outcome: str) -> None:
        pass

    def http(self, method: str, route: str, seconds: float) -> None:
        pass


def _counter(
    name: str,
    doc: str,
    labels: tuple[str, ...],
    values: Iterable[tuple[tuple[str, ...], int]],
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for label_values, value in sorted(values):
        family.add_metric(list(label_values), value)
    return family


def _histogram(
    name: str, doc: str, labels: tuple[str, ...], histograms: _Histograms
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for label_values, histogram in sorted(histograms.series.items()):
        family.add_metric(list(label_values), histogram.buckets(histograms.bounds), histogram.total)
    return family


class RecorderCollector(Collector):
    """Hands a Metrics' families to a prometheus-client registry."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return list(self._metrics.families())
