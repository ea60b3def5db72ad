"""The store contract: every change of a job appends its event, and the log reads back in
order from any position, missing none."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jqs.models import EventCursor, EventType, JobEvent, JobStatus, Progress
from jqs.outcome import Cancelled, Completed, Failed, Retry, attempt_error, cancelled_result
from jqs.port import (
    EndedRead,
    EventRead,
    Finish,
    JobEventsRead,
    PruneParams,
    RescueParams,
)
from tests.contract.conftest import Subject
from tests.support.jobs import add, claim, raw

E = EventType


async def timeline(subject: Subject, job_id: int) -> list[JobEvent]:
    return await subject.store.events_of_job(JobEventsRead(job_id))


def kinds(events: list[JobEvent]) -> list[EventType]:
    return [event.type for event in events]


def failure(message: str, attempt: int = 1) -> Any:
    try:
        raise RuntimeError(message)
    except RuntimeError as exc:
        return attempt_error(message, kind="RuntimeError", attempt=attempt, exc=exc)


async def test_a_completed_job_tells_its_whole_life(subject: Subject) -> None:
    store = subject.store
    job = await add(store, {"task": "resize"}, queue="media")
    [claimed] = await claim(store, ["media"], worker_id="w7")
    await store.finish([Finish(claimed.lease, Completed(raw({"ok": True})))])
    events = await timeline(subject, job.id)
    assert kinds(events) == [E.ENQUEUED, E.STARTED, E.COMPLETED]
    assert events[1].data == {"attempt": 1, "worker": "w7"}
    assert events[2].data == {"attempt": 1}
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert all((e.job_id, e.queue, e.task) == (job.id, "media", "resize") for e in events)
    assert E.COMPLETED.final
    assert not E.STARTED.final
    rest = await store.events_of_job(JobEventsRead(job.id, after_id=events[0].id))
    assert rest == events[1:]
    assert await store.events_of_job(JobEventsRead(job.id + 1000)) == []


async def test_retries_and_failure_carry_the_error_without_its_traceback(subject: Subject) -> None:
    store = subject.store
    job = await add(store, {"task": "flaky"}, max_attempts=2)
    [first] = await claim(store)
    await store.finish([Finish(first.lease, Retry(failure("boom"), delay=0.0))])
    [second] = await claim(store)
    await store.finish([Finish(second.lease, Failed(failure("boom again", attempt=2)))])
    events = await timeline(subject, job.id)
    assert kinds(events) == [E.ENQUEUED, E.STARTED, E.RETRY_SCHEDULED, E.STARTED, E.FAILED]
    retry, failed = events[2].data, events[4].data
    assert retry is not None
    assert failed is not None
    assert retry["attempt"] == 1
    assert "at" in retry
    assert retry["error"] == {"error": "boom", "type": "RuntimeError", "attempt": 1}
    assert failed == {
        "attempt": 2,
        "error": {"error": "boom again", "type": "RuntimeError", "attempt": 2},
    }
    assert "traceback" in (await store.get(job.id)).errors[0], "the job keeps it"


async def test_cancelling_and_retrying(subject: Subject) -> None:
    store = subject.store
    queued = await add(store, {"task": "q"})
    await store.cancel(queued.id, cancelled_result(0))
    assert kinds(await timeline(subject, queued.id)) == [E.ENQUEUED, E.CANCELLED]
    await store.retry(queued.id)
    events = await timeline(subject, queued.id)
    assert kinds(events) == [E.ENQUEUED, E.CANCELLED, E.ENQUEUED]
    assert events[-1].data == {"retry": True}

    [running] = await claim(store)
    await store.cancel(running.id, cancelled_result(1))
    await store.cancel(running.id, cancelled_result(1))  # asked again: no second event
    await store.finish([Finish(running.lease, Cancelled(cancelled_result(1)))])
    assert kinds(await timeline(subject, running.id))[-3:] == [
        E.STARTED,
        E.CANCEL_REQUESTED,
        E.CANCELLED,
    ]


async def test_release_and_rescue(subject: Subject) -> None:
    store = subject.store
    handed = await add(store, {"task": "h"})
    [claimed] = await claim(store)
    assert await store.release([claimed.lease]) == 1
    assert kinds(await timeline(subject, handed.id)) == [E.ENQUEUED, E.STARTED, E.RELEASED]

    [again] = await claim(store, worker_id="gone", lease_seconds=5)
    now = await subject.now()
    [rescued] = await store.rescue(RescueParams(now=now + timedelta(seconds=60)))
    assert rescued.status is JobStatus.FAILED, "its only attempt is spent"
    events = await timeline(subject, again.id)
    assert kinds(events)[-2:] == [E.RESCUED, E.FAILED]
    assert events[-2].data == {"attempt": 1, "worker": "gone", "status": "failed"}
    failed = events[-1].data
    assert failed is not None
    assert failed["error"]["type"] == "LeaseExpired"


async def test_progress_is_written_while_the_lease_holds(subject: Subject) -> None:
    store = subject.store
    job = await add(store, {"task": "p"})
    [claimed] = await claim(store)
    report = Progress(0.4, "resized 4 of 10", {"done": 4})
    assert await store.progress(claimed.lease, report)
    shown = (await store.get(job.id)).progress
    assert shown is not None
    assert {k: shown[k] for k in ("progress", "message", "data")} == {
        "progress": 0.4,
        "message": "resized 4 of 10",
        "data": {"done": 4},
    }
    assert "at" in shown
    await store.finish([Finish(claimed.lease, Completed(raw(None)))])
    assert not await store.progress(claimed.lease, Progress(0.9)), "the lease ended"
    assert (await store.get(job.id)).progress is None, "an ended attempt has none"
    events = await timeline(subject, job.id)
    assert kinds(events) == [E.ENQUEUED, E.STARTED, E.PROGRESS, E.COMPLETED]
    assert events[2].data == {"progress": 0.4, "message": "resized 4 of 10", "data": {"done": 4}}


async def test_a_job_handed_back_keeps_no_progress(subject: Subject) -> None:
    store = subject.store
    job = await add(store, {"task": "p"})
    [claimed] = await claim(store)
    assert await store.progress(claimed.lease, Progress(0.5))
    assert await store.release([claimed.lease]) == 1
    back = await store.get(job.id)
    assert back.status is JobStatus.QUEUED
    assert back.progress is None, "the next attempt starts without the last one's progress"


async def test_the_log_reads_on_from_any_position_missing_nothing(subject: Subject) -> None:
    store = subject.store
    start = await store.events_now()
    jobs = [await add(store, {"task": f"t{n}"}, queue=f"q{n % 2}") for n in range(5)]
    for claimed in await claim(store, ["q0", "q1"]):
        await store.finish([Finish(claimed.lease, Completed(raw(1)))])
    seen: list[JobEvent] = []
    cursor = start
    for _ in range(20):
        page = await store.events_read(EventRead(cursor, limit=4))
        if not page.events:
            break
        seen += page.events
        cursor = page.events[-1].cursor
    assert len(seen) == 15, "enqueued, started and completed for each of five jobs"
    assert len({e.id for e in seen}) == 15
    assert [e.cursor for e in seen] == sorted(e.cursor for e in seen)
    for job in jobs:
        assert kinds([e for e in seen if e.job_id == job.id]) == [
            E.ENQUEUED,
            E.STARTED,
            E.COMPLETED,
        ]
    assert {e.queue for e in seen} == {"q0", "q1"}
    # Read on from the middle: exactly the rest.
    middle = seen[6].cursor
    rest = await store.events_read(EventRead(middle, limit=100))
    assert rest.events == seen[7:]
    later = await store.events_now()
    assert (await store.events_read(EventRead(later))).events == []


async def test_pruned_jobs_take_their_events_along(subject: Subject) -> None:
    store = subject.store
    job = await add(store, {"task": "old"})
    [claimed] = await claim(store)
    await store.finish([Finish(claimed.lease, Completed(raw(1)))])
    kept = await add(store, {"task": "kept"})
    await subject.pass_time(0.05)
    assert await store.prune(PruneParams(older_than=0.01)) == 1
    assert await timeline(subject, job.id) == []
    assert kinds(await timeline(subject, kept.id)) == [E.ENQUEUED]


def test_a_cursor_reads_back_from_its_text() -> None:
    cursor = EventCursor(7415, 120)
    assert EventCursor.parse(str(cursor)) == cursor
    for bad in ("", "12", "a-1", "-1-2", "1-2-3"):
        with pytest.raises(ValueError, match=r"invalid literal|not an event position"):
            EventCursor.parse(bad)


async def test_ends_are_found_among_the_jobs_asked_for_from_a_horizon(subject: Subject) -> None:
    store = subject.store
    done, running, other = [await add(store, {"task": "t"}) for _ in range(3)]
    horizon = (await store.events_now()).xid
    claimed = await claim(store, limit=3)
    by_id = {c.id: c for c in claimed}
    await store.finish([Finish(by_id[done.id].lease, Completed(raw(1)))])
    await store.finish([Finish(by_id[other.id].lease, Completed(raw(1)))])
    ended = await store.events_ended(EndedRead([done.id, running.id], horizon))
    assert ended == [done.id]
    assert await store.events_ended(EndedRead([], horizon)) == []
    later = (await store.events_now()).xid
    assert await store.events_ended(EndedRead([done.id], later)) == []
