"""When a delivery is tried again, and for how long: the retry schedule and Retry-After."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime

# Standard Webhooks' suggestion: at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h;
# about 28 hours in all.
DEFAULT_SCHEDULE = "0,5,300,1800,7200,18000,36000,36000"
# A receiver's Retry-After is followed up to this far ahead.
MAX_RETRY_AFTER = 86_400.0


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """`delays[n]`: seconds between the n-th attempt's failure and the next attempt (the
    first entry is the wait before the first attempt, which is 0: a delivery is due when
    its event commits). One attempt per entry."""

    delays: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> RetrySchedule:
        """A schedule from comma-separated seconds; ValueError when it is not one."""
        try:
            delays = tuple(float(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise ValueError(f"not a list of seconds: {text!r}") from None
        if not delays or any(not 0 <= d <= MAX_RETRY_AFTER for d in delays):
            raise ValueError(f"give 1 or more delays of 0 to {MAX_RETRY_AFTER:g} seconds")
        return cls(delays)

    @property
    def attempts(self) -> int:
        """How many attempts a delivery gets."""
        return len(self.delays)

    def retry_in(self, attempts_made: int, retry_after: float | None = None) -> float | None:
        """Seconds until the next attempt after `attempts_made` failed ones; None: give up.

        A receiver's Retry-After replaces the schedule's delay for that attempt.
        """
        if attempts_made >= len(self.delays):
            return None
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        return self.delays[attempts_made]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks to wait (delay-seconds or an HTTP date); None when
    absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
