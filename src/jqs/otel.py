"""OpenTelemetry spans for jqs.tracing, following the messaging semantic conventions
(messaging.system "jqs", the queue as messaging.destination.name, operations "send" and
"process"). Imported only when tracing is on: it needs the `otel` extra."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from jqs import __version__
from jqs.errors import ConfigError
from jqs.models import ClaimedJob
from jqs.outcome import Completed, Failed, Outcome, Retry
from jqs.tracing import ProcessSpan, SendSpan, Tracing

_PROPAGATOR = TraceContextTextMapPropagator()
SYSTEM = "jqs"


def provider_from_env(env: Mapping[str, str]) -> TracerProvider:
    """A provider exporting as OTEL_TRACES_EXPORTER says (otlp, the default, or console);
    the OTLP exporter reads its own OTEL_EXPORTER_OTLP_* variables."""
    name = env.get("OTEL_SERVICE_NAME") or "jqs"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    kind = (env.get("OTEL_TRACES_EXPORTER") or "otlp").strip().lower()
    exporter: SpanExporter
    if kind == "console":
        exporter = ConsoleSpanExporter()
    elif kind == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ConfigError(
                "OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http: "
                "pip install 'jqs[otel]' (or 'jqs-client[worker,otel]')"
            ) from exc
        exporter = OTLPSpanExporter()
    else:
        raise ConfigError(f"OTEL_TRACES_EXPORTER={kind!r}: JQS exports to otlp or console")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _context(traceparent: str | None) -> Context | None:
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


@dataclass(slots=True)
class _Send:
    span: trace.Span
    traceparent: str | None

    def end(self, job_ids: list[int] | None = None, error: BaseException | None = None) -> None:
        if job_ids:
            if len(job_ids) == 1:
                self.span.set_attribute("messaging.message.id", str(job_ids[0]))
            else:
                self.span.set_attribute("messaging.jqs.job_ids", [str(i) for i in job_ids])
        if error is not None:
            self.span.record_exception(error)
            self.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self.span.end()


@dataclass(slots=True)
class _Process:
    span: trace.Span

    def outcome(self, outcome: Outcome | None) -> None:
        if outcome is None:
            self.span.set_status(Status(StatusCode.ERROR, "the attempt's runner failed"))
            return
        self.span.set_attribute("messaging.jqs.outcome", type(outcome).__name__.lower())
        if isinstance(outcome, Failed | Retry):
            self.span.set_status(Status(StatusCode.ERROR, outcome.error.message))
            self.span.set_attribute("error.type", outcome.error.kind)
        elif isinstance(outcome, Completed):
            self.span.set_status(Status(StatusCode.OK))


class OtelTracing(Tracing):
    """Spans through an OpenTelemetry tracer provider."""

    enabled = True

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("jqs", __version__)

    def send(
        self, headers: Mapping[str, str], queue: str, task: str | None, count: int = 1
    ) -> SendSpan | None:
        caller = _PROPAGATOR.extract(headers) if "traceparent" in headers else None
        attributes: dict[str, str | int] = {
            "messaging.system": SYSTEM,
            "messaging.destination.name": queue,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
        }
        if task is not None:
            attributes["messaging.jqs.task"] = task
        if count != 1:
            attributes["messaging.batch.message_count"] = count
        span = self._tracer.start_span(
            f"send {queue}", context=caller, kind=SpanKind.PRODUCER, attributes=attributes
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        return _Send(span, carrier.get("traceparent"))

    @contextmanager
    def process(self, job: ClaimedJob) -> Iterator[ProcessSpan | None]:
        parent = _context(job.trace_context)
        links = []
        if parent is not None and job.attempt > 1:
            links.append(Link(trace.get_current_span(parent).get_span_context()))
        attributes: dict[str, str | int] = {
            "messaging.system": SYSTEM,
            "messaging.destination.name": job.queue,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.message.id": str(job.id),
            "messaging.jqs.attempt": job.attempt,
        }
        if job.task is not None:
            attributes["messaging.jqs.task"] = job.task
        with self._tracer.start_as_current_span(
            f"process {job.queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield _Process(span)

    def shutdown(self) -> None:
        self._provider.shutdown()
