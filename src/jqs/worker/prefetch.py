"""Prefetch: how many jobs a busy pool claims ahead of its free slots.

A claim costs a round trip. When every slot is busy with short handlers, the slots that
free while the next claim is in flight sit idle until it returns; with jobs of a
millisecond or less that idle time is a quarter of the worker's time. So a saturated pool
keeps about as many jobs in hand as it finishes during two claim round trips: the rate at
which handlers return times the claim latency (the bandwidth-delay product of a network
link), never more than twice its concurrency (the pool's choice of limit).

Slow handlers make that product less than one, so nothing is claimed ahead and no job waits
here while another worker could run it; a job claimed ahead waits about one round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# How often the return rate is re-measured, and how much a new measurement weighs.
RATE_WINDOW = 0.1
SMOOTHING = 0.5
# Jobs claimed ahead cover this many claim round trips.
ROUND_TRIPS = 2.0


class Prefetch:
    """Tracks handler returns and claim latency; says how many jobs to hold ahead."""

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._window_start = clock()
        self._returned = 0
        self._rate = 0.0  # handler returns per second
        self._latency = 0.0  # seconds per claim

    def handler_returned(self) -> None:
        """One handler finished (its slot is free)."""
        self._returned += 1

    def claim_took(self, seconds: float) -> None:
        """A claim round trip took `seconds`."""
        if self._latency == 0.0:
            self._latency = seconds
        else:
            self._latency += SMOOTHING * (seconds - self._latency)

    def target(self) -> int:
        """Jobs to hold claimed ahead of the free slots now (0 to `limit`)."""
        now = self._clock()
        elapsed = now - self._window_start
        if elapsed >= RATE_WINDOW:
            rate = self._returned / elapsed
            # The first measurement is taken whole: a worker that starts on a full queue
            # should not spend its first windows creeping up from zero.
            self._rate = rate if self._rate == 0.0 else self._rate + SMOOTHING * (rate - self._rate)
            self._returned = 0
            self._window_start = now
        return min(self._limit, int(ROUND_TRIPS * self._rate * self._latency))
