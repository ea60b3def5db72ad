"""The overview's throughput chart: minutes as bars, drawn as inline SVG on the server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jqs.models import Throughput

WIDTH = 600
HEIGHT = 120


@dataclass(frozen=True, slots=True)
class Bar:
    """One minute: where its bars go, and what they stand for."""

    x: float
    width: float
    completed_height: float
    failed_height: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """The bars of every minute of the window, oldest first, and the tallest minute's total."""

    bars: list[Bar]
    peak: int
    completed: int
    failed: int
    width: int = WIDTH
    height: int = HEIGHT


def chart(minutes: list[Throughput], now: datetime, span: int) -> Chart:
    """`span` minutes up to `now`'s, each a bar (empty minutes too)."""
    last = now.replace(second=0, microsecond=0)
    slots = [last - timedelta(minutes=span - 1 - n) for n in range(span)]
    counted = {m.minute: m for m in minutes}
    peak = max((m.completed + m.failed for m in minutes), default=0)
    step = WIDTH / span
    bars = []
    for n, minute in enumerate(slots):
        m = counted.get(minute, Throughput(minute))
        scale = (HEIGHT - 4) / peak if peak else 0.0
        bars.append(
            Bar(
                x=n * step,
                width=max(step - 1, 1),
                completed_height=m.completed * scale,
                failed_height=m.failed * scale,
                label=f"{minute:%H:%M} UTC: {m.completed} completed, {m.failed} failed",
            )
        )
    return Chart(
        bars,
        peak,
        completed=sum(m.completed for m in minutes),
        failed=sum(m.failed for m in minutes),
    )
