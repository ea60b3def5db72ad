"""Traces: a producer span for each submission and a consumer span for each attempt.

Off unless the standard OpenTelemetry variables ask for traces (OTEL_TRACES_EXPORTER, or an
OTLP endpoint in OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; never
with OTEL_SDK_DISABLED=true), and then it needs the `otel` extra (`pip install 'jqs[otel]'`).
Off, every call here is a constant: nothing is imported, nothing allocated per job.

On (jqs.otel), the span of `POST /jobs` (or the batch) joins the caller's trace when the
request carries `traceparent`, and its own traceparent is stored with the job; each attempt's
span is a child of it, so the whole life of a job is one trace. An attempt after the first
(a retry, or a rescue after a lost worker) also links to the submission.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

from jqs.errors import ConfigError
from jqs.models import ClaimedJob
from jqs.outcome import Outcome


class SendSpan(Protocol):
    """The span of one submission (one job, or one batch of them)."""

    traceparent: str | None  # to store with the job(s)

    def end(self, job_ids: list[int] | None = None, error: BaseException | None = None) -> None:
        """Close the span, naming the jobs it created (none: it failed)."""
        ...


class ProcessSpan(Protocol):
    """The span of one attempt."""

    def outcome(self, outcome: Outcome | None) -> None:
        """Record how the attempt ended (None: the runner itself failed)."""
        ...


class Tracing:
    """Tracing switched off: every method does nothing."""

    enabled = False

    def send(
        self, headers: Mapping[str, str], queue: str, task: str | None, count: int = 1
    ) -> SendSpan | None:
        """Begin the span of a submission; None when tracing is off."""
        return None

    @contextmanager
    def process(self, job: ClaimedJob) -> Iterator[ProcessSpan | None]:
        """The span of an attempt, current while its handler runs; None when off."""
        yield None

    def shutdown(self) -> None:
        """Send what is still buffered (at exit)."""


def traces_configured(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard OTEL_* variables ask for traces."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracing_from_env(env: Mapping[str, str] = os.environ) -> Tracing:
    """Tracing as the environment configures it; ConfigError if it asks for traces and the
    `otel` extra is missing."""
    if not traces_configured(env):
        return Tracing()
    try:
        from jqs.otel import OtelTracing, provider_from_env
    except ImportError as exc:
        raise ConfigError(
            "OTEL_* variables ask for traces, but OpenTelemetry is not installed: "
            "pip install 'jqs[otel]' (or, for the client's worker, 'jqs-client[worker,otel]')"
        ) from exc
    return OtelTracing(provider_from_env(env))
