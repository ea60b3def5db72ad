"""The store contract, the dashboard's side: bounded searches and per-minute counts."""

from __future__ import annotations

from datetime import timedelta

from jqs.models import EventType, JobStatus, QueueSettings
from jqs.outcome import Completed, Failed, attempt_error, cancelled_result
from jqs.port import (
    Finish,
    JobEventsRead,
    JobSearch,
    QueuePatch,
    SearchParams,
    ThroughputRead,
)
from tests.contract.conftest import Subject
from tests.support.jobs import add, claim, raw


async def test_search_by_payload_containment(subject: Subject) -> None:
    store = subject.store
    a = await add(store, {"task": "mail", "user_id": 42, "tags": ["x", "y"]})
    await add(store, {"task": "mail", "user_id": 43})
    c = await add(store, {"task": "sms", "user_id": 42, "meta": {"region": "eu"}}, queue="q2")
    found = await store.job_search(SearchParams(JobSearch(contains=raw({"user_id": 42})), 0))
    assert [job.id for job in found] == [c.id, a.id]
    nested = JobSearch(contains=raw({"meta": {"region": "eu"}}))
    assert [job.id for job in await store.job_search(SearchParams(nested, 0))] == [c.id]
    tagged = JobSearch(contains=raw({"tags": ["y"]}))
    assert [job.id for job in await store.job_search(SearchParams(tagged, 0))] == [a.id]
    # true is not 1
    assert await store.job_search(SearchParams(JobSearch(contains=raw({"user_id": True})), 0)) == []
    narrowed = JobSearch(contains=raw({"user_id": 42}), queue="q2", task="sms")
    assert [job.id for job in await store.job_search(SearchParams(narrowed, 0))] == [c.id]
    limited = JobSearch(contains=raw({"user_id": 42}), queues=frozenset({"default"}))
    assert [job.id for job in await store.job_search(SearchParams(limited, 0))] == [a.id]


async def test_search_window_and_keyset(subject: Subject) -> None:
    store = subject.store
    ids = [(await add(store, {"task": "t", "n": n})).id for n in range(5)]
    window = SearchParams(JobSearch(task="t"), above_id=ids[1], limit=2)
    first = await store.job_search(window)
    assert [job.id for job in first] == [ids[4], ids[3]]
    after = SearchParams(window.search, above_id=ids[1], before_id=ids[3], limit=2)
    assert [job.id for job in await store.job_search(after)] == [ids[2]]
    count = await store.job_search_count(window)
    assert count.matching == 3
    assert count.oldest_at == (await store.get(ids[2])).created_at
    assert await store.job_newest_id() == ids[4]
    now = await subject.now()
    later = SearchParams(JobSearch(since=now + timedelta(hours=1)), above_id=0)
    assert await store.job_search(later) == []
    assert (await store.job_search_count(later)).matching == 0
    earlier = SearchParams(JobSearch(until=now + timedelta(hours=1)), above_id=0)
    assert (await store.job_search_count(earlier)).matching == 5


async def test_search_by_status(subject: Subject) -> None:
    store = subject.store
    await add(store, {"task": "a"})
    await add(store, {"task": "b"})
    [claimed] = await claim(store, limit=1)
    failed = attempt_error("broken", kind="RuntimeError", attempt=1)
    await store.finish([Finish(claimed.lease, Failed(failed))])
    found = await store.job_search(SearchParams(JobSearch(status=JobStatus.FAILED), 0))
    assert [job.id for job in found] == [claimed.id]
    assert found[0].errors[0]["error"] == "broken"


async def test_throughput_counts_completed_and_failed_per_minute(subject: Subject) -> None:
    store = subject.store
    assert await store.throughput(ThroughputRead()) == []
    for n in range(3):
        await add(store, {"task": "t", "n": n})
    jobs = await claim(store, limit=3)
    failed = attempt_error("broken", kind="RuntimeError", attempt=1)
    await store.finish(
        [
            Finish(jobs[0].lease, Completed(raw(1))),
            Finish(jobs[1].lease, Completed(raw(2))),
            Finish(jobs[2].lease, Failed(failed)),
        ]
    )
    minutes = await store.throughput(ThroughputRead(minutes=5))
    assert sum(m.completed for m in minutes) == 2
    assert sum(m.failed for m in minutes) == 1
    assert all(m.minute.second == 0 for m in minutes)
    capped = await store.throughput(ThroughputRead(minutes=5, rows=1))
    assert sum(m.completed + m.failed for m in capped) == 1


async def test_queue_settings_list(subject: Subject) -> None:
    store = subject.store
    await store.queue_update(QueuePatch("b", paused=True, given=frozenset({"paused"})))
    await store.queue_update(
        QueuePatch("a", concurrency_limit=2, given=frozenset({"concurrency_limit"}))
    )
    assert await store.queue_settings_list() == [
        QueueSettings("a", concurrency_limit=2),
        QueueSettings("b", paused=True),
    ]


async def test_cancel_many_ends_queued_jobs_and_asks_running_ones_once(subject: Subject) -> None:
    store = subject.store
    running = await add(store, {"task": "a"})
    [claimed] = await claim(store, limit=1)
    assert claimed.id == running.id
    queued = await add(store, {"task": "b"}, queue="q2")
    done = await add(store, {"task": "c"}, queue="q3")
    [other] = await claim(store, ["q3"], limit=1)
    await store.finish([Finish(other.lease, Completed(raw(1)))])
    ids = [running.id, queued.id, done.id, 999_999, 0]
    moved = await store.cancel_many(ids, cancelled_result(attempt=0))
    assert sorted(moved) == sorted([(running.id, "default"), (queued.id, "q2")])
    assert (await store.get(queued.id)).status is JobStatus.CANCELLED
    assert (await store.get(running.id)).cancel_requested
    assert (await store.get(done.id)).status is JobStatus.COMPLETED
    assert await store.cancel_many(ids, cancelled_result(attempt=0)) == [], "asked already"
    kinds = [e.type for e in await store.events_of_job(JobEventsRead(running.id))]
    assert kinds.count(EventType.CANCEL_REQUESTED) == 1
    kinds = [e.type for e in await store.events_of_job(JobEventsRead(queued.id))]
    assert kinds[-1] is EventType.CANCELLED


async def test_retry_many_queues_failed_and_cancelled_jobs_again(subject: Subject) -> None:
    store = subject.store
    failing = await add(store, {"task": "a"})
    [claimed] = await claim(store, limit=1)
    failed = attempt_error("broken", kind="RuntimeError", attempt=1)
    await store.finish([Finish(claimed.lease, Failed(failed))])
    cancelled = await add(store, {"task": "b"}, queue="q2")
    await store.cancel(cancelled.id, cancelled_result(attempt=0))
    queued = await add(store, {"task": "c"})
    moved = await store.retry_many([queued.id, cancelled.id, failing.id, 0])
    assert sorted(moved) == sorted([(failing.id, "default"), (cancelled.id, "q2")])
    again = await store.get(failing.id)
    assert again.status is JobStatus.QUEUED
    assert again.attempts == 0
    assert again.errors[0]["error"] == "broken", "the history stays"
    assert (await store.get(queued.id)).status is JobStatus.QUEUED
    assert await store.retry_many([failing.id]) == []
    kinds = [e.type for e in await store.events_of_job(JobEventsRead(failing.id))]
    assert kinds[-1] is EventType.ENQUEUED
