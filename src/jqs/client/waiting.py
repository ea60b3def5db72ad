"""Waiting for a job: long requests (`?wait=S`) while the server holds them, polls when it
answers at once (a server without `wait`), until the job finishes or the time runs out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from jqs.client.calls import MAX_WAIT
from jqs.client.errors import WaitTimeout
from jqs.client.models import Job


@dataclass(slots=True)
class WaitPlan:
    """The steps of one wait. `timeout` None: as long as it takes."""

    timeout: float | None
    poll: float = 0.5
    started: float = field(default_factory=time.monotonic)

    def next_wait(self) -> float | None:
        """Seconds the next request may wait; None: the time is up."""
        if self.timeout is None:
            return MAX_WAIT
        left = self.timeout - (time.monotonic() - self.started)
        return None if left <= 0 else min(MAX_WAIT, left)

    def pause_after(self, asked: float, took: float) -> float:
        """Seconds to sleep before asking again: none when the server held the request,
        a poll's worth when it answered at once."""
        if took >= asked / 2:
            return 0.0
        left = self.next_wait()
        return 0.0 if left is None else min(self.poll, left)

    def timed_out(self, job: Job) -> WaitTimeout:
        """The error for a job still unfinished when the time is up."""
        return WaitTimeout(job, self.timeout or 0.0)
