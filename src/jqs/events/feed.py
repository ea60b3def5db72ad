"""The event feed: one reader of the event log per process, fanned out to subscribers.

Requests that wait for a job (`?wait`) or stream events (SSE) subscribe here; none of them
queries the database while it waits.

Streams need the log, in order. The feed reads it only while a stream subscribes: at once
when this process's own statements have written events (`wake`, from the store's
`on_events` hook), when another process says it has (`wake` again, from a LISTEN on the
events channel, which the feed holds only while it is in use and a while after), and
otherwise every `poll_interval` as a fallback. While the log says that events are pending
above its horizon (a transaction that started earlier is still open), it reads again
shortly, less often the longer that lasts.

A waiter needs no order, only its job's end, so it does not read the log at all. It is
answered by whoever knows that its job's end has committed: this process's store once its
statement that ended the job has returned (`ended`, from the store's `on_ended` hook), or
another process that says so in its notification (`ended` again). Whenever ends may have
gone unnamed (a notification had no room for them all, the listening connection was
(re)made, and so missed what was sent before) the feed asks the store which waited-for
jobs have ended (`recheck`); it also asks every `poll_interval` while anyone waits, which
bounds the wait of an end that nothing reported. A request registers its waiter before it
reads the job: an end committed before the read is in what it reads, and one committed
after is reported to the waiter (or found by the next recheck). A request that has just
written the job itself (`POST /jobs?wait`) need not read it: it records the ends reported
while it writes (`recording`), and if none is its job's and none may have gone unnamed, its
job cannot have ended before its waiter was registered.

Positions (streams): when the feed starts reading it takes `events_now()`, a position
before every event yet to be written; then it moves past each page it reads. A stream is
given the feed's position as it registers (`start`), and every event after that position
reaches it.

Memory is bounded per subscriber: a waiter holds one flag; a stream holds at most
`stream_buffer` events it has not taken yet, and is cut off when it falls further behind
(its client resumes from the last event it got).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from jqs.clock import Clock, SystemClock
from jqs.errors import StoreError
from jqs.events.filter import EventFilter
from jqs.logging import get_logger
from jqs.models import EventCursor, EventPage, JobEvent
from jqs.port import EndedRead, EventRead, Events
from jqs.service import LoopService, Service

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """How the feed reads the log and how much a subscriber may hold."""

    poll_interval: float = 1.0  # read this often when no wake-up comes
    pending_first: float = 0.002  # re-read this soon while events are pending...
    pending_most: float = 0.05  # ...backing off to this while they stay pending
    page_size: int = 500
    stream_buffer: int = 1000  # events a stream may have untaken before it is cut off
    linger: float = 60.0  # keep listening this long after the last subscriber leaves


class StreamEnded(Exception):
    """The subscription is over: the process is stopping, or the subscriber fell behind."""


class Waiter:
    """Set when its job's final event has been read, or when the process stops."""

    __slots__ = ("_done", "job_id")

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self._done = asyncio.Event()

    def finish(self) -> None:
        """The job has ended (or the wait must)."""
        self._done.set()

    @property
    def done(self) -> bool:
        """Whether the job has ended (or the wait must)."""
        return self._done.is_set()

    async def wait(self, clock: Clock, within: float) -> bool:
        """Whether the job ended (or the process stops) within `within` seconds."""
        return await clock.wait(self._done, within)


class EndsSeen:
    """The ends reported to the feed while a submission is being written (`recording`):
    the request that submits a job and then waits for it needs no read of the job before
    its wait when none of them is its job's, and none may have gone unnamed meanwhile."""

    __slots__ = ("_feed", "ids", "unsure")

    LIMIT = 10_000  # ids held at most; past that, as unsure as a recheck

    def __init__(self, feed: EventFeed) -> None:
        self._feed = feed
        self.ids: set[int] = set()
        self.unsure = False

    def clear_of(self, job_id: int) -> bool:
        """Whether no end of `job_id` can have been reported (or gone unnamed) so far."""
        return not self.unsure and job_id not in self.ids

    def stop(self) -> None:
        """Record no more (idempotent)."""
        self._feed._recordings.discard(self)


class Subscription:
    """A stream's share of the feed: the matching events since `start`, up to a bound."""

    __slots__ = ("_buffer", "_ready", "ended", "filter", "limit", "overflowed", "start")

    def __init__(self, event_filter: EventFilter, start: EventCursor, limit: int) -> None:
        self.filter = event_filter
        self.start = start
        self.limit = limit
        self._buffer: deque[JobEvent] = deque()
        self._ready = asyncio.Event()
        self.overflowed = False  # fell behind: events after the buffered ones were dropped
        self.ended = False  # the process stops

    def offer(self, event: JobEvent) -> None:
        """Keep `event` if it matches, unless the subscriber has fallen behind."""
        if self.overflowed or not self.filter.matches(event):
            return
        if len(self._buffer) >= self.limit:
            self.overflowed = True
        else:
            self._buffer.append(event)
        self._ready.set()

    def end(self) -> None:
        """End the stream at once."""
        self.ended = True
        self._ready.set()

    async def take(self, clock: Clock, within: float) -> list[JobEvent]:
        """The events kept so far, waiting up to `within` seconds for one ([]: none came).
        Raises StreamEnded once the stream is over (after the kept events of a subscriber
        that fell behind)."""
        if not self._buffer and not self.ended and not self.overflowed:
            await clock.wait(self._ready, within)
        if self.ended or (self.overflowed and not self._buffer):
            raise StreamEnded
        self._ready.clear()
        taken = list(self._buffer)
        self._buffer.clear()
        return taken


class EventFeed(LoopService):
    """Reads the log while anyone subscribes; hands each event to those who want it."""

    def __init__(
        self,
        store: Events,
        settings: FeedSettings | None = None,
        *,
        clock: Clock | None = None,
        listener: Service | None = None,
    ) -> None:
        self._store = store
        self.settings = settings or FeedSettings()
        self.clock = clock or SystemClock()
        self._listener = listener
        self.name = "event-feed"
        self._cursor: EventCursor | None = None  # None: not reading (nobody subscribes)
        self._positioning = asyncio.Lock()
        self._wake = asyncio.Event()  # something for the loop to do: read, or recheck
        self._recheck = False  # ends may have gone unnamed: ask which waited-for jobs ended
        self._busy = asyncio.Event()
        self._waiters: dict[int, set[Waiter]] = {}
        self._job_streams: dict[int, set[Subscription]] = {}
        self._streams: set[Subscription] = set()
        self._recordings: set[EndsSeen] = set()
        self.closed = False
        self.reads = 0  # pages read so far (tests count the queries)

    def wake(self) -> None:
        """Events may have been written: read the log now (when a stream subscribes)."""
        if self._has_streams():
            self._wake.set()

    def recheck(self) -> None:
        """Jobs may have ended without being named to `ended`: ask the store about every
        waited-for job now."""
        for seen in self._recordings:
            seen.unsure = True
        if self._waiters:
            self._recheck = True
            self._wake.set()

    def ended(self, job_ids: Iterable[int]) -> None:
        """These jobs' final events have committed: answer their waiters now, whatever the
        log's reader has got to (streams get the events from the log, in order)."""
        if self._recordings:
            job_ids = list(job_ids)
            for seen in self._recordings:
                seen.ids.update(job_ids)
                if len(seen.ids) > EndsSeen.LIMIT:
                    seen.unsure = True
                    seen.ids.clear()
                    seen.stop()
        for job_id in job_ids:
            for waiter in self._waiters.pop(job_id, ()):
                waiter.finish()

    def recording(self) -> EndsSeen:
        """Start recording the ends reported from now on, until `stop()`: a request that
        writes a job and then waits for it records while it writes, and stops once its
        waiter is registered (EndsSeen.clear_of then says whether it must read the job)."""
        seen = EndsSeen(self)
        if self.closed:
            seen.unsure = True
        else:
            self._recordings.add(seen)
        return seen

    @contextlib.asynccontextmanager
    async def waiting(self, job_id: int) -> AsyncIterator[Waiter]:
        """A waiter for `job_id`'s end, registered for the block's length. Read the job
        inside the block: an end that the read misses sets the waiter."""
        waiter = Waiter(job_id)
        if self.closed:
            waiter.finish()
            yield waiter
            return
        self._waiters.setdefault(job_id, set()).add(waiter)
        try:
            await self.start()
            self._busy.set()
            yield waiter
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[job_id]

    @contextlib.asynccontextmanager
    async def subscribe(self, event_filter: EventFilter) -> AsyncIterator[Subscription]:
        """A stream of the events that match, from the feed's position as it registers."""
        await self._position()
        assert self._cursor is not None
        sub = Subscription(event_filter, self._cursor, self.settings.stream_buffer)
        if self.closed:
            sub.end()
            yield sub
            return
        if event_filter.job_id is not None:
            group = self._job_streams.setdefault(event_filter.job_id, set())
        else:
            group = self._streams
        group.add(sub)
        self._busy.set()
        try:
            yield sub
        finally:
            group.discard(sub)
            if event_filter.job_id is not None and not group:
                self._job_streams.pop(event_filter.job_id, None)

    def close(self) -> None:
        """The process stops: every waiter wakes, every stream ends, new ones end at once."""
        self.closed = True
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.finish()
        for group in (*self._job_streams.values(), self._streams):
            for sub in group:
                sub.end()

    async def stop(self) -> None:
        """End the subscriptions and stop reading (and listening)."""
        self.close()
        await super().stop()
        if self._listener is not None:
            await self._listener.stop()

    def _has_subscribers(self) -> bool:
        return bool(self._waiters or self._job_streams or self._streams)

    def _has_streams(self) -> bool:
        return bool(self._job_streams or self._streams)

    async def _position(self) -> None:
        """Make sure the feed reads the log, from a position before whatever a subscriber
        that registered already may wait for."""
        await self.start()
        if self._cursor is None:
            async with self._positioning:
                if self._cursor is None:
                    self._cursor = await self._store.events_now()
        self._busy.set()
        self._wake.set()

    async def _loop(self) -> None:
        pending_wait = self.settings.pending_first
        next_check = self.clock.monotonic() + self.settings.poll_interval
        while True:
            if not self._has_subscribers():
                self._cursor = None
                self._busy.clear()
                if not await self.clock.wait(self._busy, self.settings.linger):
                    if self._listener is not None:
                        await self._listener.stop()
                    await self.clock.wait(self._busy, None)
                next_check = self.clock.monotonic() + self.settings.poll_interval
                continue
            if self._listener is not None:
                await self._listener.start()
            if self._recheck or self.clock.monotonic() >= next_check:
                self._recheck = False
                next_check = self.clock.monotonic() + self.settings.poll_interval
                await self._check_waiters()
            until_check = max(next_check - self.clock.monotonic(), 0.0)
            if not self._has_streams():
                self._cursor = None  # waiters alone need no position in the log
                self._wake.clear()
                await self.clock.wait(self._wake, until_check)
                continue
            if self._cursor is None:  # a stream is being positioned
                self._busy.clear()
                await self.clock.wait(self._busy, min(until_check, self.settings.poll_interval))
                continue
            self._wake.clear()
            try:
                page = await self._store.events_read(
                    EventRead(self._cursor, self.settings.page_size)
                )
            except StoreError as exc:
                log.warning("event_feed_read_failed", error=str(exc))
                await self.clock.wait(self._wake, self.settings.poll_interval)
                continue
            self.reads += 1
            before = self._cursor
            self._deliver(page)
            if len(page.events) >= self.settings.page_size:
                continue
            if self._cursor != before:  # the horizon moved: what is pending may be readable
                pending_wait = self.settings.pending_first
            if page.pending:
                within = pending_wait
                pending_wait = min(pending_wait * 2, self.settings.pending_most)
            else:
                within = self.settings.poll_interval
                pending_wait = self.settings.pending_first
            await self.clock.wait(self._wake, min(within, until_check))

    async def _check_waiters(self) -> None:
        """Wake the waiters whose job has ended, as the store says now."""
        if not self._waiters:
            return
        try:
            ended = await self._store.events_ended(EndedRead(list(self._waiters), 0))
        except StoreError as exc:
            log.warning("event_feed_read_failed", error=str(exc))
            return
        self.ended(ended)

    def _deliver(self, page: EventPage) -> None:
        """Hand the page's events out and move past them (no await in between, so that a
        subscriber's `start` is always where the feed goes on from)."""
        assert self._cursor is not None
        cursor = self._cursor
        for event in page.events:
            if event.type.final:
                for waiter in self._waiters.pop(event.job_id, ()):
                    waiter.finish()
            for sub in self._job_streams.get(event.job_id, ()):
                sub.offer(event)
            for sub in self._streams:
                sub.offer(event)
            cursor = event.cursor
        if len(page.events) < self.settings.page_size:
            cursor = max(cursor, EventCursor(page.horizon, 0))
        self._cursor = cursor
