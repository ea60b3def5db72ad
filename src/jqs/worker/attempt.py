"""Attempt: one claimed job's stay in a worker pool, and where it is in it.

    WAITING --slot frees--> RUNNING --handler ends--> WRITING --outcome written--> (gone)
       |                       |
       +--lease lost / stop----+--> interrupted: the handler is cancelled with a reason

A job claimed ahead of a free slot waits (jqs.worker.prefetch). Its handler runs in a slot;
once it returns, the slot is free for the next job while the outcome is written.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

from jqs.models import ClaimedJob
from jqs.worker.progress import JobProgress


class AttemptState(enum.Enum):
    """Where an attempt is in the pool."""

    WAITING = "waiting"  # claimed, waiting for a free slot
    RUNNING = "running"  # its handler runs
    WRITING = "writing"  # its handler is done; its outcome is being written


class Interrupt(enum.Enum):
    """Why a running handler was cancelled."""

    CANCEL = "cancel"  # someone asked for the job to be cancelled
    LEASE_LOST = "lease_lost"  # another worker owns the job now
    SHUTDOWN = "shutdown"  # the process is stopping: hand the job back


@dataclass(slots=True, eq=False)
class Attempt:
    """One claimed job in a pool."""

    job: ClaimedJob
    state: AttemptState = AttemptState.WAITING
    interrupt: Interrupt | None = None
    task: asyncio.Task[None] | None = None
    progress: JobProgress | None = None  # where its handler's reports go, while it runs

    def stop(self, reason: Interrupt) -> bool:
        """Cancel the running handler for `reason`; False if it is not running (or was
        interrupted already). A handler that returned is not cancelled: its outcome's write
        is fenced by the lease anyway, and cancelling it mid-statement would only break the
        connection it runs on."""
        if self.state is not AttemptState.RUNNING or self.interrupt is not None:
            return False
        assert self.task is not None
        self.interrupt = reason
        self.task.cancel()
        return True
