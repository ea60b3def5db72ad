"""ClaimHub: claims for workers that ask over HTTP, waiting (long-polling) until work comes.

A claim is answered at once when jobs are runnable. Otherwise it waits for the signals
that already wake this process's own worker pool: an enqueue through this process, a
notification from another one (jqs.store.notify), a job handed back by the rescuer. Waiting
claims do not each look at the database on their own:

- claims that ask for the same queues and tasks form a group, served first come first
  served; a signal for one of its queues wakes the group's first idle claim, and only that
  one claims; one that comes back with a full batch wakes the next (there may be more);
- a signal that reaches a claim while it is at the database makes it claim again rather
  than wait, so no job slips between a claim and its wait;
- jobs that become due without a signal (a retry's backoff, a later run_at, room under a
  concurrency or rate limit) are found by one claim per group each `poll_interval`;
- at most `max_claims` claim statements run at once, whatever the number of waiting claims.

A claim may be given a future that is done once its asker has gone (the HTTP connection
closed): it then ends at once with nothing and leaves its group, and a signal it took on its
way out goes to the next claim of the group, so a worker that left never swallows a job's
wake-up meant for one still waiting.

`close()` (the process is stopping) ends every waiting claim with nothing, at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from jqs.clock import Clock, SystemClock
from jqs.models import ClaimedJob, ClaimResult
from jqs.port import ClaimParams, JobQueue
from jqs.service import LoopService


@dataclass(frozen=True, slots=True)
class ClaimAsk:
    """What a worker asks for: up to `limit` jobs of `queues` (and `tasks`, None: any),
    waiting up to `wait` seconds for them, each under a lease of `lease_seconds`."""

    worker_id: str
    queues: tuple[str, ...]
    limit: int
    lease_seconds: float
    wait: float = 0.0
    tasks: tuple[str, ...] | None = None

    @property
    def group(self) -> tuple[frozenset[str], frozenset[str] | None]:
        """Claims that any job fits alike: same queues, same tasks."""
        return frozenset(self.queues), None if self.tasks is None else frozenset(self.tasks)


@dataclass(slots=True, eq=False)
class _Waiter:
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    claiming: bool = False  # its claim is at the database now

    def asker_gone(self, _: object) -> None:
        self.wake.set()


@dataclass(slots=True, eq=False)
class _Group:
    queues: frozenset[str]
    waiters: list[_Waiter] = field(default_factory=list)  # oldest first

    def wake_first_idle(self, but: _Waiter | None = None) -> None:
        """Wake the oldest claim that waits and was not woken yet; when every claim is at
        the database, the oldest of those, which then claims again as soon as its claim
        comes back."""
        busy: _Waiter | None = None
        for waiter in self.waiters:
            if waiter is but or waiter.wake.is_set():
                continue
            if not waiter.claiming:
                waiter.wake.set()
                return
            busy = busy or waiter
        if busy is not None:
            busy.wake.set()


class ClaimHub(LoopService):
    """Claims for HTTP workers, long-polling on this process's signals of new work."""

    def __init__(
        self,
        queue: JobQueue,
        *,
        poll_interval: float = 1.0,
        max_claims: int = 4,
        clock: Clock | None = None,
    ) -> None:
        self._queue = queue
        self._poll_interval = poll_interval
        self._slots = asyncio.Semaphore(max_claims)
        self._clock = clock or SystemClock()
        self._groups: dict[tuple[frozenset[str], frozenset[str] | None], _Group] = {}
        self._closed = False
        self.name = "claim-hub"

    @property
    def waiting(self) -> int:
        """Claims waiting now."""
        return sum(len(group.waiters) for group in self._groups.values())

    def notify(self, queue: str | None = None) -> None:
        """Work may be waiting in `queue` (None: anywhere)."""
        for group in self._groups.values():
            if queue is None or queue in group.queues:
                group.wake_first_idle()

    def close(self) -> None:
        """The process is stopping: every waiting claim ends now with nothing."""
        self._closed = True
        for group in self._groups.values():
            for waiter in group.waiters:
                waiter.wake.set()

    async def _loop(self) -> None:
        while True:
            await self._clock.sleep(self._poll_interval)
            self.notify(None)

    async def claim(
        self, ask: ClaimAsk, gone: asyncio.Future[None] | None = None
    ) -> list[ClaimedJob]:
        """Jobs for `ask`, as soon as there are any, or none once `ask.wait` has passed,
        the process stops, or `gone` is done (the asker left)."""
        if self._closed or (gone is not None and gone.done()):
            return []
        deadline = self._clock.monotonic() + ask.wait
        key = ask.group
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key[0])
        waiter = _Waiter()
        group.waiters.append(waiter)
        if gone is not None:
            gone.add_done_callback(waiter.asker_gone)
        try:
            while True:
                # A signal from here on sets `wake` again: the wait below then ends at once.
                waiter.wake.clear()
                waiter.claiming = True
                try:
                    result = await self._claim_now(ask)
                finally:
                    waiter.claiming = False
                if result.jobs:
                    if len(result.jobs) == ask.limit:
                        group.wake_first_idle(but=waiter)  # a full batch: more may be there
                    return result.jobs
                left = deadline - self._clock.monotonic()
                if left <= 0 or self._closed:
                    return []
                within = left if result.rate_wait is None else min(left, result.rate_wait)
                await self._clock.wait(waiter.wake, within)
                if self._closed:
                    return []
                if gone is not None and gone.done():
                    # The wake may have been a signal meant for a claim of this group.
                    group.wake_first_idle(but=waiter)
                    return []
        finally:
            if gone is not None:
                gone.remove_done_callback(waiter.asker_gone)
            group.waiters.remove(waiter)
            if not group.waiters:
                del self._groups[key]

    async def _claim_now(self, ask: ClaimAsk) -> ClaimResult:
        async with self._slots:
            return await self._queue.claim(
                ClaimParams(
                    queues=ask.queues,
                    limit=ask.limit,
                    lease_seconds=ask.lease_seconds,
                    worker_id=ask.worker_id,
                    tasks=None if ask.tasks is None else list(ask.tasks),
                )
            )
