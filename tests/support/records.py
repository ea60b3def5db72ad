"""Reading what the test handlers recorded: one line per execution event."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    event: str  # start | end
    job_id: int
    attempt: int
    pid: int
    at: float  # time.time() in the handler


def read_runs(record: Path) -> list[Run]:
    if not record.exists():
        return []
    runs = []
    for line in record.read_text().splitlines():
        event, job_id, attempt, pid, at = line.split()
        runs.append(Run(event, int(job_id), int(attempt), int(pid), float(at)))
    return runs


def max_overlap(runs: list[Run]) -> int:
    """The most jobs that were between start and end at one moment."""
    edges = sorted((r.at, 1 if r.event == "start" else -1) for r in runs)
    # At equal times, count ends before starts: touching intervals do not overlap.
    edges.sort(key=lambda e: (e[0], e[1]))
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak
