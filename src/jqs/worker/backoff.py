"""How long a failed job waits before its next attempt."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random.

    Attempt 1 waits about base, attempt 2 about 2*base, then 4*base, ... never more than cap.
    The fixed half keeps delays growing; the random half spreads retries of jobs that failed
    together (a dependency outage) so they do not all come back at the same instant.
    """
    step = min(cap, base * 2.0 ** max(attempt - 1, 0))
    draw: float = (rng or random).random()
    return step / 2 + draw * step / 2
