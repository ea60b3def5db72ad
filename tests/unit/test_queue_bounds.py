"""QueueBounds: max_queued from a periodic count plus the process's own submissions."""

from __future__ import annotations

import asyncio

import pytest

from jqs.api.bounds import QueueBounds
from jqs.api.problems import ProblemError
from jqs.models import QueueDepth
from jqs.port import QueuePatch
from jqs.testing import ManualClock, MemoryStore
from tests.support.jobs import add, claim


def bound(name: str, max_queued: int | None) -> QueuePatch:
    return QueuePatch(name, max_queued=max_queued, given=frozenset({"max_queued"}))


async def submit(bounds: QueueBounds, store: MemoryStore, queue: str) -> None:
    """What POST /jobs does: admit, insert, settle."""
    counted = bounds.admit(queue)
    try:
        await add(store, {"task": "x"}, queue=queue)
    finally:
        if counted:
            bounds.settle(queue)


async def test_refuses_at_the_bound_counting_its_own_jobs_and_recounts_each_interval() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    await store.queue_update(bound("small", 3))
    await add(store, {"task": "x"}, queue="small")
    bounds = QueueBounds(store, interval=2.0, clock=clock)
    await bounds.start()  # counted once before answering: 1 queued
    try:
        await submit(bounds, store, "small")
        await submit(bounds, store, "small")
        with pytest.raises(ProblemError) as full:
            bounds.admit("small")
        assert full.value.status == 429
        assert full.value.headers == {"Retry-After": "2"}
        assert "is full" in full.value.detail
        assert full.value.extra == {"queue": "small", "max_queued": 3}
        for _ in range(1000):
            assert bounds.admit("elsewhere") is False  # no bound: never refused nor counted
        await claim(store, ["small"], limit=2)  # workers take two
        with pytest.raises(ProblemError):
            bounds.admit("small")  # not recounted yet
        await clock.advance(2.0)
        await submit(bounds, store, "small")
        await submit(bounds, store, "small")
        with pytest.raises(ProblemError):
            bounds.admit("small")
    finally:
        await bounds.stop()


async def test_jobs_admitted_but_not_yet_inserted_hold_their_place_across_a_count() -> None:
    store = MemoryStore(ManualClock())
    await store.queue_update(bound("q", 2))
    bounds = QueueBounds(store)
    await bounds.refresh()
    assert bounds.admit("q")  # its INSERT is on its way
    await bounds.refresh()  # the count cannot see it yet
    assert bounds.admit("q")
    with pytest.raises(ProblemError):
        bounds.admit("q")
    await add(store, {"task": "x"}, queue="q")
    bounds.settle("q")  # the first one is in; a count may or may not see it: still held
    with pytest.raises(ProblemError):
        bounds.admit("q")
    await bounds.refresh()  # now counted by the store: 1, and 1 pending
    with pytest.raises(ProblemError):
        bounds.admit("q")
    bounds.settle("q")  # the second INSERT failed: nothing more in the queue
    await bounds.refresh()
    assert bounds.admit("q")


async def test_a_batch_fits_whole_or_is_refused_whole() -> None:
    store = MemoryStore(ManualClock())
    await store.queue_update(bound("a", 5))
    await store.queue_update(bound("b", 2))
    bounds = QueueBounds(store)
    await bounds.refresh()
    with pytest.raises(ProblemError) as refused:
        bounds.admit_all({"a": 4, "b": 3})
    assert "room for 2 more queued jobs" in refused.value.detail
    assert refused.value.extra["queue"] == "b"
    assert bounds.admit_all({"a": 4, "b": 2})  # the refusal counted nothing
    with pytest.raises(ProblemError):
        bounds.admit_all({"a": 2})
    assert bounds.admit_all({"a": 1, "c": 100})
    assert bounds.admit_all({"c": 100}) is False
    bounds.settle_all({"a": 5, "b": 2})  # all failed: the count says what is queued
    await bounds.refresh()
    assert bounds.admit_all({"a": 5, "b": 2})


async def test_a_bound_removed_or_changed_shows_at_the_next_count() -> None:
    store = MemoryStore(ManualClock())
    await store.queue_update(bound("q", 1))
    bounds = QueueBounds(store)
    await bounds.refresh()
    bounds.admit("q")
    with pytest.raises(ProblemError):
        bounds.admit("q")
    await store.queue_update(bound("q", None))
    await bounds.refresh()
    for _ in range(10):
        bounds.admit("q")


class _SlowCount(MemoryStore):
    """A count that takes a few turns of the event loop, as a database's does."""

    async def queue_depths(self) -> list[QueueDepth]:
        depths = await super().queue_depths()
        for _ in range(3):
            await asyncio.sleep(0)
        return depths


async def test_counts_asked_for_at_once_take_turns() -> None:
    # A PATCH recounts while the periodic count may be under way: neither may undo the other.
    store = _SlowCount(ManualClock())
    await store.queue_update(bound("q", 3))
    bounds = QueueBounds(store)
    await bounds.refresh()
    assert bounds.admit("q")
    await add(store, {"task": "x"}, queue="q")
    bounds.settle("q")
    await asyncio.gather(bounds.refresh(), bounds.refresh(), bounds.refresh())
    assert bounds.admit("q", 2)
    with pytest.raises(ProblemError):
        bounds.admit("q")
