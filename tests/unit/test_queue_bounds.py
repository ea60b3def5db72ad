"""QueueBounds: max_queued from a periodic count plus the process's own submissions."""

from __future__ import annotations

import pytest

from jqs.api.bounds import QueueBounds
from jqs.api.problems import ProblemError
from jqs.store.port import QueuePatch
from jqs.testing import ManualClock, MemoryStore
from tests.support.jobs import add, claim


def bound(name: str, max_queued: int | None) -> QueuePatch:
    return QueuePatch(name, max_queued=max_queued, given=frozenset({"max_queued"}))


async def test_refuses_at_the_bound_counting_its_own_jobs_and_recounts_each_interval() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    await store.queue_update(bound("small", 3))
    await add(store, {"task": "x"}, queue="small")
    bounds = QueueBounds(store, interval=2.0, clock=clock)
    await bounds.start()  # counted once before answering: 1 queued
    try:
        bounds.admit("small")
        bounds.admit("small")
        with pytest.raises(ProblemError) as full:
            bounds.admit("small")
        assert full.value.status == 429
        assert full.value.headers == {"Retry-After": "2"}
        assert "is full" in full.value.detail
        assert full.value.extra == {"queue": "small", "max_queued": 3}
        for _ in range(1000):
            bounds.admit("elsewhere")  # no bound: never refused
        # Workers take two jobs (only one was inserted here: the others were admitted and
        # never inserted, and the recount corrects that).
        await add(store, {"task": "x"}, queue="small")
        await claim(store, ["small"], limit=2)
        with pytest.raises(ProblemError):
            bounds.admit("small")  # not recounted yet
        await clock.advance(2.0)
        bounds.admit("small")
        bounds.admit("small")
        bounds.admit("small")
        with pytest.raises(ProblemError):
            bounds.admit("small")
    finally:
        await bounds.stop()


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
    bounds.admit_all({"a": 4, "b": 2})  # the refusal counted nothing
    with pytest.raises(ProblemError):
        bounds.admit_all({"a": 2})
    bounds.admit_all({"a": 1, "c": 100})


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
