"""Exceptions a handler raises to steer what happens to its job."""

from __future__ import annotations


class RetryLater(Exception):
    """Run the job again later: in `delay` seconds, or after the usual backoff if None.

    The attempt still counts; once `max_attempts` are spent the job fails with this error.
    """

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        if delay is not None and delay < 0:
            raise ValueError("delay must be >= 0")
        super().__init__(reason or "the handler asked to be retried later")
        self.delay = delay


class FailNow(Exception):
    """Fail the job at once, without further attempts (for errors a retry cannot fix)."""
