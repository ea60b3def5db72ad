"""Metrics of one process: bounded labels, histograms Prometheus can read, cached gauges."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jqs.metrics import Exposition, Metrics, NoMetrics
from jqs.metrics.recorder import QUEUE_LABELS, RecorderCollector
from jqs.models import JobStatus
from jqs.testing import ManualClock, MemoryStore
from tests.support.jobs import add


def _text(metrics: Metrics) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RecorderCollector(metrics))
    return generate_latest(registry).decode()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_label_values_stay_bounded_whatever_clients_send() -> None:
    metrics = Metrics(lambda: ["resize"])
    for n in range(QUEUE_LABELS + 50):
        metrics.enqueued(f"q{n}", f"task-{n}")
    metrics.enqueued("q0", "resize", 3)
    samples = _samples(_text(metrics))
    queues = {dict(labels)["queue"] for name, labels in samples if name.startswith("jqs_jobs_enq")}
    assert len(queues) == QUEUE_LABELS + 1
    assert "other" in queues
    tasks = {dict(labels)["task"] for name, labels in samples if name.startswith("jqs_jobs_enq")}
    assert tasks == {"resize", "other"}
    key = ("jqs_jobs_enqueued_total", frozenset({("queue", "other"), ("task", "other")}))
    assert samples[key] == 50


def test_outcomes_retries_and_histograms() -> None:
    metrics = Metrics(lambda: ["t"])
    metrics.finished("default", "t", JobStatus.COMPLETED, duration=0.003)
    metrics.finished("default", "t", JobStatus.COMPLETED, duration=2.0)
    metrics.finished("default", "t", JobStatus.QUEUED, duration=0.5)
    metrics.finished("default", "t", JobStatus.FAILED)
    metrics.rescued("default", "queued")
    metrics.http("GET", "/jobs", 0.0007)
    samples = _samples(_text(metrics))
    labels = frozenset({("queue", "default"), ("task", "t")})
    done = labels | {("status", "completed")}
    assert samples["jqs_jobs_finished_total", done] == 2
    assert samples["jqs_jobs_finished_total", labels | {("status", "failed")}] == 1
    assert samples["jqs_job_retries_total", labels] == 1
    assert samples["jqs_job_duration_seconds_count", labels] == 3
    assert samples["jqs_job_duration_seconds_sum", labels] == 2.503
    # Cumulative buckets: 0.003 in le=0.005, 0.5 in le=0.5, 2.0 in le=5.0.
    assert samples["jqs_job_duration_seconds_bucket", labels | {("le", "0.001")}] == 0
    assert samples["jqs_job_duration_seconds_bucket", labels | {("le", "0.005")}] == 1
    assert samples["jqs_job_duration_seconds_bucket", labels | {("le", "0.5")}] == 2
    assert samples["jqs_job_duration_seconds_bucket", labels | {("le", "5.0")}] == 3
    assert samples["jqs_job_duration_seconds_bucket", labels | {("le", "+Inf")}] == 3
    assert samples["jqs_leases_expired_total", frozenset()] == 1
    http = frozenset({("method", "GET"), ("route", "/jobs"), ("le", "0.001")})
    assert samples["jqs_http_request_duration_seconds_bucket", http] == 1


def test_switched_off_nothing_is_recorded() -> None:
    metrics = NoMetrics()
    metrics.enqueued("default", "t")
    metrics.finished("default", "t", "completed", 1.0)
    assert "jqs_jobs_enqueued_total{" not in _text(metrics)


async def test_cluster_gauges_are_read_at_most_every_few_seconds() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    exposition = Exposition(Metrics(), store, clock=clock)
    await add(store, {"task": "a"}, queue="mail")
    first = _samples((await exposition.render()).decode())
    queued = frozenset({("queue", "mail"), ("status", "queued")})
    assert first["jqs_queue_jobs", queued] == 1
    await add(store, {"task": "b"}, queue="mail")
    await clock.advance(1)
    assert _samples((await exposition.render()).decode())["jqs_queue_jobs", queued] == 1
    await clock.advance(5)
    assert _samples((await exposition.render()).decode())["jqs_queue_jobs", queued] == 2
