"""Following the log from a position a client gives: what was written already, read from the
store, then what comes, from the feed, each event once.

Both yield events as they come, and None when `tick` seconds pass without one (the caller
sends a keep-alive then). They end when the feed ends the subscription (the process stops,
or the client fell too far behind: it resumes from the last event it got).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from jqs.events.feed import EventFeed, StreamEnded
from jqs.events.filter import EventFilter
from jqs.models import EventCursor, JobEvent
from jqs.port import EventRead, Events, JobEventsRead

HISTORY_PAGE = 500


@dataclass(frozen=True, slots=True)
class Follow:
    """Where to follow from and what: `tick`, seconds between keep-alives."""

    event_filter: EventFilter
    tick: float


async def follow_log(
    feed: EventFeed, store: Events, follow: Follow, after: EventCursor | None
) -> AsyncIterator[JobEvent | None]:
    """Every job's matching events after `after` (None: from now), in the log's order.

    The feed is subscribed to first; the log is then read from `after` up to where the
    feed was when the subscription began, and the feed's events go on from there. A
    subscription that overflows while the log is still being read is taken again.
    """
    sent = after
    while True:
        async with feed.subscribe(follow.event_filter) as sub:
            if sent is None:
                sent = sub.start
            position = sent
            while position < sub.start and not (sub.overflowed or sub.ended):
                page = await store.events_read(EventRead(position, HISTORY_PAGE))
                for event in page.events:
                    position = event.cursor
                    if follow.event_filter.matches(event):
                        yield event
                        sent = event.cursor
                if len(page.events) < HISTORY_PAGE:
                    # Everything below the horizon has been read. The feed's start is at or
                    # below a horizon it has seen, so this ends the catching up.
                    position = max(position, EventCursor(page.horizon, 0))
                    if position < sub.start:
                        await feed.clock.sleep(feed.settings.pending_first)
            if sub.overflowed:
                continue  # fell behind while catching up: subscribe again from `sent`
            while True:
                try:
                    events = await sub.take(feed.clock, follow.tick)
                except StreamEnded:
                    return
                if not events:
                    yield None
                for event in events:
                    if event.cursor > sent:
                        yield event
                        sent = event.cursor


async def follow_job(
    feed: EventFeed,
    store: Events,
    follow: Follow,
    after_id: int,
    finished: Callable[[], Awaitable[bool]],
) -> AsyncIterator[JobEvent | None]:
    """One job's events after the event `after_id`, ending with the job's final event.

    `finished` says whether the job has ended; it is asked once subscribed and before the
    log is read, so that a job whose final event the client has already got (at or before
    `after_id`) ends the stream at once, and one that ends later ends it with that event.
    """
    job_id = follow.event_filter.job_id
    assert job_id is not None
    async with feed.subscribe(follow.event_filter) as sub:
        ended = await finished()
        sent = after_id
        while True:
            history = await store.events_of_job(JobEventsRead(job_id, sent, HISTORY_PAGE))
            for event in history:
                yield event
                sent = event.id
                if event.type.final:
                    return
            if len(history) < HISTORY_PAGE:
                break
        if ended:
            return  # its final event is at or before `after_id`: the client has it
        while True:
            try:
                events = await sub.take(feed.clock, follow.tick)
            except StreamEnded:
                return
            if not events:
                yield None
            for event in events:
                if event.id > sent:
                    yield event
                    sent = event.id
                    if event.type.final:
                        return
