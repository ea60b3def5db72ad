"""The event feed on the in-memory store: waiters and streams get what they subscribed to,
once, in order; the feed reads only while someone subscribes; slow streams are cut off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from jqs.events import EventFeed, EventFilter, FeedSettings, StreamEnded
from jqs.events.follow import Follow, follow_job, follow_log
from jqs.models import EventCursor, EventPage, EventType, JobEvent
from jqs.outcome import Completed, Retry, attempt_error
from jqs.port import EndedRead, EventRead, Finish, JobEventsRead
from jqs.testing import ManualClock, MemoryStore
from tests.support.jobs import add, claim, raw

E = EventType


def wired(
    settings: FeedSettings | None = None, *, ends_named: bool = True
) -> tuple[MemoryStore, EventFeed, ManualClock]:
    """A store whose writes wake the feed and (unless `ends_named` is False) name the jobs
    they end; a clock that stands still, so that nothing but those calls moves the feed."""
    clock = ManualClock()
    store = MemoryStore(clock)
    feed = EventFeed(store, settings, clock=clock)
    store.on_events = feed.wake
    if ends_named:
        store.on_ended = feed.ended
    return store, feed, clock


async def complete_next(store: MemoryStore, queue: str = "default") -> None:
    [job] = await claim(store, [queue], limit=1)
    await store.finish([Finish(job.lease, Completed(raw({"ok": True})))])


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_waiter_wakes_when_its_job_completes() -> None:
    store, feed, clock = wired()
    job = await add(store, {"task": "t"})
    other = await add(store, {"task": "t"}, queue="other")
    async with feed.waiting(job.id) as waiter, feed.waiting(other.id) as bystander:
        assert (await store.get(job.id)).status.value == "queued"
        await complete_next(store)
        assert await asyncio.wait_for(waiter.wait(clock, 30), 5)
        await settle()
        assert not bystander.done
    await feed.stop()


async def test_an_end_between_the_read_and_the_wait_is_not_missed() -> None:
    store, feed, clock = wired()
    job = await add(store, {"task": "t"})
    async with feed.waiting(job.id) as waiter:
        seen = await store.get(job.id)
        assert not seen.status.finished
        await complete_next(store)  # the job ends after the read, before the wait
        await settle()
        assert await asyncio.wait_for(waiter.wait(clock, 30), 5)
    await feed.stop()


async def test_the_feed_reads_the_log_only_while_a_stream_subscribes() -> None:
    store, feed, clock = wired()
    await feed.start()
    for _ in range(5):
        await add(store, {"task": "t"})
        await complete_next(store)
    await settle()
    assert feed.reads == 0
    job = await add(store, {"task": "t"})
    async with feed.waiting(job.id) as waiter:
        await complete_next(store)
        assert await asyncio.wait_for(waiter.wait(clock, 30), 5)
    assert feed.reads == 0  # a waiter is answered by the end as committed, not by the log
    async with feed.subscribe(EventFilter()) as sub:
        await add(store, {"task": "t"})
        assert await sub.take(clock, 30)
    reads = feed.reads
    assert reads >= 1
    for _ in range(5):
        await add(store, {"task": "t"})
    await settle()
    assert feed.reads in (reads, reads + 1)  # at most the read already under way
    await feed.stop()


async def test_a_waiter_whose_end_nobody_names_is_answered_by_a_recheck() -> None:
    """As when another process's notification had no room for the job's name, or was sent
    before this process listened: a recheck asks the store, and one comes every
    poll_interval while anyone waits."""
    store, feed, clock = wired(FeedSettings(poll_interval=1.0), ends_named=False)
    first, second = await add(store, {"task": "t"}), await add(store, {"task": "t"})
    async with feed.waiting(first.id) as told, feed.waiting(second.id) as polled:
        await complete_next(store)
        await settle()
        assert not told.done
        feed.recheck()
        assert await asyncio.wait_for(told.wait(clock, 30), 5)
        await complete_next(store)
        await settle()
        assert not polled.done
        await clock.advance(1.0)
        assert await asyncio.wait_for(polled.wait(clock, 30), 5)
    await feed.stop()


async def test_a_stream_gets_the_matching_events_in_order_once() -> None:
    store, feed, clock = wired()
    only = EventFilter(queues=frozenset({"media"}), types=frozenset({E.ENQUEUED, E.COMPLETED}))
    async with feed.subscribe(only) as sub:
        first = await add(store, {"task": "t"}, queue="media")
        await add(store, {"task": "t"}, queue="mail")
        await complete_next(store, "media")
        await settle()
        got: list[JobEvent] = []
        while len(got) < 2:
            got += await sub.take(clock, 30)
    assert [(e.job_id, e.type) for e in got] == [(first.id, E.ENQUEUED), (first.id, E.COMPLETED)]
    await feed.stop()


async def test_a_stream_that_falls_behind_is_cut_off_after_what_it_holds() -> None:
    store, feed, clock = wired(FeedSettings(stream_buffer=3))
    async with feed.subscribe(EventFilter()) as sub:
        for _ in range(5):
            await add(store, {"task": "t"})
        await settle()
        assert len(await sub.take(clock, 30)) == 3
        with pytest.raises(StreamEnded):
            await sub.take(clock, 30)
    await feed.stop()


async def test_closing_wakes_waiters_and_ends_streams_and_new_ones_at_once() -> None:
    store, feed, clock = wired()
    job = await add(store, {"task": "t"})
    async with feed.waiting(job.id) as waiter, feed.subscribe(EventFilter()) as sub:
        feed.close()
        assert await waiter.wait(clock, 30)
        with pytest.raises(StreamEnded):
            await sub.take(clock, 30)
    async with feed.waiting(job.id) as late:
        assert await late.wait(clock, 30)
    await feed.stop()


async def collect(events: AsyncIterator[JobEvent | None], count: int) -> list[JobEvent]:
    got: list[JobEvent] = []
    async for event in events:
        if event is not None:
            got.append(event)
        if len(got) == count:
            break
    return got


async def test_following_the_log_from_a_position_catches_up_then_goes_live() -> None:
    store, feed, _ = wired()
    start = await store.events_now()
    jobs = [await add(store, {"task": "t"}) for _ in range(3)]
    follow = Follow(EventFilter(), tick=30)
    events = follow_log(feed, store, follow, start)
    first = await collect(events, 3)
    assert [e.job_id for e in first] == [j.id for j in jobs]
    await complete_next(store)
    await complete_next(store)
    live = await collect(events, 4)
    assert [e.type for e in live] == [E.STARTED, E.COMPLETED, E.STARTED, E.COMPLETED]
    await events.aclose()  # type: ignore[attr-defined]
    resumed = follow_log(feed, store, follow, first[1].cursor)
    again = await collect(resumed, 5)
    assert [e.id for e in again] == [e.id for e in first[2:] + live]
    await resumed.aclose()  # type: ignore[attr-defined]
    await feed.stop()


async def test_a_jobs_stream_ends_with_its_final_event_and_resumes_after_any() -> None:
    store, feed, _ = wired()
    job = await add(store, {"task": "t"})
    follow = Follow(EventFilter(job_id=job.id), tick=30)

    async def finished() -> bool:
        return (await store.get(job.id)).status.finished

    stream = follow_job(feed, store, follow, 0, finished)
    [enqueued] = await collect(stream, 1)
    await complete_next(store)
    rest = [e async for e in stream if e is not None]
    assert [e.type for e in rest] == [E.STARTED, E.COMPLETED]
    resumed = [e async for e in follow_job(feed, store, follow, enqueued.id, finished)]
    assert resumed == rest
    after_all = [e async for e in follow_job(feed, store, follow, rest[-1].id, finished)]
    assert after_all == []
    assert EventCursor(0, 0) < enqueued.cursor
    await feed.stop()


class FakeListener:
    """Counts how often the feed starts and stops its LISTEN connection."""

    def __init__(self) -> None:
        self.starts = 0
        self.stops = 0
        self.running = False

    async def start(self) -> None:
        if not self.running:
            self.starts += 1
        self.running = True

    async def stop(self) -> None:
        if self.running:
            self.stops += 1
        self.running = False


async def test_the_feed_listens_while_in_use_and_a_while_after() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    listener = FakeListener()
    feed = EventFeed(store, FeedSettings(linger=60), clock=clock, listener=listener)
    store.on_events = feed.wake
    await feed.start()
    await clock.advance(600)
    assert listener.starts == 0  # nobody subscribed: no connection
    job = await add(store, {"task": "t"})
    async with feed.waiting(job.id):
        await settle()
        assert listener.running
    await clock.advance(30)
    assert listener.running  # a new subscriber soon after finds it open
    async with feed.waiting(job.id):
        await settle()
    await clock.advance(59)
    assert listener.running
    await clock.advance(2)
    assert not listener.running
    assert listener.starts == 1
    await feed.stop()


async def test_a_stream_that_overflows_while_catching_up_subscribes_again() -> None:
    store, feed, _ = wired(FeedSettings(stream_buffer=2))
    start = await store.events_now()
    for _ in range(3):
        await add(store, {"task": "t"})
    follow = Follow(EventFilter(), tick=30)
    events = follow_log(feed, store, follow, start)
    got = await collect(events, 1)  # catching up; the subscription is taken
    for _ in range(5):  # more than it may hold while the client reads the first
        await add(store, {"task": "t"})
    await settle()
    got += await collect(events, 7)
    assert [e.id for e in got] == sorted({e.id for e in got})
    assert len(got) == 8
    await events.aclose()  # type: ignore[attr-defined]
    await feed.stop()


class HeldLog:
    """The log as a transaction left open elsewhere leaves it: nothing more is readable,
    events are pending above the horizon, and none of them is found ended above it."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def events_of_job(self, params: JobEventsRead) -> list[JobEvent]:
        return await self._store.events_of_job(params)

    async def events_read(self, params: EventRead) -> EventPage:
        return EventPage([], params.after.xid, pending=True)

    async def events_ended(self, params: EndedRead) -> list[int]:
        return []

    async def events_now(self) -> EventCursor:
        return await self._store.events_now()


def held() -> tuple[MemoryStore, EventFeed, ManualClock]:
    """A feed whose log is held back, on a clock that stands still: only the ends that the
    store reports as it commits them can answer a waiter."""
    clock = ManualClock()
    store = MemoryStore(clock)
    feed = EventFeed(HeldLog(store), clock=clock)
    store.on_events = feed.wake
    store.on_ended = feed.ended
    return store, feed, clock


async def test_a_waiter_is_answered_by_its_jobs_end_as_committed_while_the_log_is_held() -> None:
    store, feed, clock = held()
    job = await add(store, {"task": "t"})
    cancelled = await add(store, {"task": "t"}, queue="other")
    bystander_job = await add(store, {"task": "t"}, queue="third")
    async with (
        feed.waiting(job.id) as waiter,
        feed.waiting(cancelled.id) as cancel_waiter,
        feed.waiting(bystander_job.id) as bystander,
    ):
        await complete_next(store)
        await store.cancel(cancelled.id, raw(None))
        assert await asyncio.wait_for(waiter.wait(clock, 30), 5)
        assert await asyncio.wait_for(cancel_waiter.wait(clock, 30), 5)
        await settle()
        assert not bystander.done
    await feed.stop()


async def test_an_attempt_retried_does_not_answer_its_waiter() -> None:
    store, feed, _ = held()
    job = await add(store, {"task": "t"}, max_attempts=2)
    async with feed.waiting(job.id) as waiter:
        [claimed] = await claim(store, limit=1)
        error = attempt_error("again", kind="RuntimeError", attempt=1)
        await store.finish([Finish(claimed.lease, Retry(error, 0))])
        await settle()
        assert not waiter.done
    await feed.stop()


async def test_a_recording_holds_the_ends_reported_until_it_stops() -> None:
    _, feed, _ = wired()
    seen = feed.recording()
    assert seen.clear_of(7)
    feed.ended([7])
    assert not seen.clear_of(7)
    assert seen.clear_of(8)
    feed.recheck()  # ends may have gone unnamed: nothing is clear any more
    assert not seen.clear_of(8)
    seen.stop()
    later = feed.recording()
    later.stop()
    feed.ended([9])
    assert later.clear_of(9), "stopped: it records nothing more"
    await feed.stop()
