"""Traces with OpenTelemetry's in-memory exporter: a job's submission and each of its
attempts are spans of one trace, the caller's when it sent `traceparent`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from jqs.errors import ConfigError
from jqs.otel import OtelTracing
from jqs.tasks.registry import TaskOptions, TaskRegistry, TaskSpec
from jqs.testing import MemoryStore
from jqs.tracing import Tracing, traces_configured, tracing_from_env
from jqs.worker import PoolSettings, WorkerPool
from jqs.worker.executor import RetryPolicy
from tests.support.http import api_client

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = f"00-{CALLER_TRACE}-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> tuple[OtelTracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelTracing(provider), exporter


async def _until(check: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within time")


async def test_submission_and_attempts_are_one_trace(
    spans: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = spans
    store = MemoryStore()
    registry = TaskRegistry()
    calls: list[int] = []

    async def flaky(payload: dict[str, Any]) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    registry.add(TaskSpec.of("flaky", flaky, TaskOptions()))
    pool = WorkerPool(
        store,
        registry,
        PoolSettings(queues=["media"], poll_interval=0.02, retry=RetryPolicy(backoff_base=0.0)),
        tracing=tracing,
    )
    async with api_client(store, tracing=tracing) as client:
        sent = await client.post(
            "/jobs?queue=media&max_attempts=2",
            json={"task": "flaky"},
            headers={"traceparent": CALLER},
        )
        assert sent.status_code == 201
        job_id = sent.json()["id"]
        await pool.start()
        try:
            await _until(lambda: len(calls) == 2 and len(exporter.get_finished_spans()) >= 3)
        finally:
            await pool.stop(1.0)
        batch = await client.post(
            "/jobs/batch", json={"jobs": [{"payload": {"task": "a"}}, {"payload": {"task": "b"}}]}
        )
        assert batch.status_code == 201

    finished: list[ReadableSpan] = list(exporter.get_finished_spans())
    send = next(s for s in finished if s.name == "send media")
    assert send.kind is SpanKind.PRODUCER
    assert send.context is not None
    assert f"{send.context.trace_id:032x}" == CALLER_TRACE, "the caller's trace"
    assert send.attributes is not None
    assert send.attributes["messaging.system"] == "jqs"
    assert send.attributes["messaging.destination.name"] == "media"
    assert send.attributes["messaging.operation.type"] == "send"
    assert send.attributes["messaging.message.id"] == str(job_id)

    attempts = sorted(
        (s for s in finished if s.name == "process media"),
        key=lambda s: (s.attributes or {})["messaging.jqs.attempt"],
    )
    assert len(attempts) == 2
    for span in attempts:
        assert span.kind is SpanKind.CONSUMER
        assert span.parent is not None
        assert span.parent.span_id == send.context.span_id, "a child of the submission"
        assert span.context is not None
        assert span.context.trace_id == send.context.trace_id
        assert (span.attributes or {})["messaging.message.id"] == str(job_id)
    first, second = attempts
    assert first.status.status_code is StatusCode.ERROR
    assert (first.attributes or {})["error.type"] == "RuntimeError"
    assert second.status.status_code is StatusCode.OK
    assert [link.context.span_id for link in second.links] == [send.context.span_id]
    assert list(first.links) == []

    [batch_span] = [s for s in finished if s.name == "send default"]
    assert (batch_span.attributes or {})["messaging.batch.message_count"] == 2


def test_tracing_is_off_unless_the_otel_variables_ask() -> None:
    assert not traces_configured({})
    assert not traces_configured({"OTEL_TRACES_EXPORTER": "none"})
    assert not traces_configured(
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
    )
    assert traces_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert traces_configured({"OTEL_TRACES_EXPORTER": "console"})
    off = tracing_from_env({})
    assert type(off) is Tracing
    assert not off.enabled
    assert tracing_from_env({"OTEL_TRACES_EXPORTER": "console"}).enabled
    with pytest.raises(ConfigError, match="otlp or console"):
        tracing_from_env({"OTEL_TRACES_EXPORTER": "zipkin"})
