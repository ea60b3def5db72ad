"""Prometheus metrics: what this process did (jqs.metrics.recorder) and how the whole
deployment stands (jqs.metrics.cluster), rendered by prometheus-client at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from jqs.clock import Clock
from jqs.metrics.cluster import ActivitySource, ClusterGauges
from jqs.metrics.recorder import Metrics, NoMetrics, RecorderCollector

__all__ = ["CONTENT_TYPE_LATEST", "Exposition", "Metrics", "NoMetrics"]


class Exposition:
    """The /metrics page of one process: its own metrics, the cluster's gauges, and the
    process's CPU, memory and Python runtime (prometheus-client's standard collectors)."""

    def __init__(
        self, metrics: Metrics, store: ActivitySource, *, clock: Clock | None = None
    ) -> None:
        self.metrics = metrics
        self.cluster = ClusterGauges(store, clock=clock)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RecorderCollector(metrics))
        self.registry.register(self.cluster)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    async def render(self) -> bytes:
        """The text exposition format, gauges read at most every few seconds."""
        await self.cluster.refresh()
        return generate_latest(self.registry)
