"""Queue limits at claim time: pause, concurrency and the rate limit's token bucket.

Pure logic, shared by both stores; the database store runs it inside the transaction that
holds the limited queues' rows locked, so claims on a limited queue take turns across every
process.

A rate limit of r jobs a second is a bucket that refills at r tokens a second and holds at
most a tenth of a second's worth (at least one token): a claim that came late can catch up,
but a long idle spell does not turn into a burst.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class LimitedQueue:
    """A queue with limits or a pause, as locked for a claim."""

    name: str
    concurrency_limit: int | None
    rate_limit: float | None
    paused: bool
    tokens: float  # in the bucket at `refilled_at`
    refilled_at: datetime


def tokens_at(queue: LimitedQueue, at: datetime) -> float:
    """How many tokens the queue's bucket holds at `at`."""
    if queue.rate_limit is None:
        return float("inf")
    elapsed = max((at - queue.refilled_at).total_seconds(), 0.0)
    capacity = max(1.0, queue.rate_limit / 10)
    return min(capacity, queue.tokens + queue.rate_limit * elapsed)


@dataclass(slots=True)
class ClaimPlan:
    """How many jobs each served queue may give now, and when a rate limit next allows one."""

    names: list[str] = field(default_factory=list)
    caps: list[int] = field(default_factory=list)
    max_running: list[int | None] = field(default_factory=list)
    rate_wait: float | None = None

    def wait_at_most(self, seconds: float) -> None:
        """Note that a rate-limited queue gives its next job in `seconds`."""
        self.rate_wait = seconds if self.rate_wait is None else min(self.rate_wait, seconds)


def plan_claim(
    queues: Sequence[str], limited: Mapping[str, LimitedQueue], limit: int, at: datetime
) -> ClaimPlan:
    """Per served queue: paused gives none, rate-limited at most its whole tokens."""
    plan = ClaimPlan()
    for name in queues:
        queue = limited.get(name)
        cap = limit
        if queue is not None:
            if queue.paused:
                continue
            if queue.rate_limit is not None:
                tokens = tokens_at(queue, at)
                if tokens < 1:
                    plan.wait_at_most((1 - tokens) / queue.rate_limit)
                    continue
                cap = min(cap, int(tokens))
        plan.names.append(name)
        plan.caps.append(cap)
        plan.max_running.append(queue.concurrency_limit if queue is not None else None)
    return plan


@dataclass(frozen=True, slots=True)
class Spent:
    """A rate-limited queue's bucket after a claim."""

    name: str
    tokens: float
    at: datetime


def spend_tokens(
    limited: Mapping[str, LimitedQueue], claimed: Mapping[str, int], plan: ClaimPlan, at: datetime
) -> list[Spent]:
    """Take the claimed jobs' tokens from the rate-limited queues; notes the next wait."""
    spent = []
    for name, queue in limited.items():
        if queue.rate_limit is None or queue.paused:
            continue
        left = tokens_at(queue, at) - claimed.get(name, 0)
        spent.append(Spent(name, left, at))
        if left < 1:
            plan.wait_at_most((1 - left) / queue.rate_limit)
    return spent
