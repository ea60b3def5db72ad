"""The store contract, workers' side: claim, leases, every kind of outcome, hand-back."""

from __future__ import annotations

import uuid
from datetime import timedelta

from jqs.models import EnqueueOptions, JobStatus, Lease, NewJob
from jqs.outcome import Cancelled, Completed, Failed, Retry, attempt_error, cancelled_result
from jqs.port import Finish, LeaseCheckParams, RescueParams, WorkerBeat
from tests.contract.conftest import Subject
from tests.support.jobs import add, claim, raw


def error(message: str, attempt: int = 1) -> Failed:
    return Failed(attempt_error(message, kind="RuntimeError", attempt=attempt))


async def test_claim_takes_priority_then_fifo_and_only_its_queues(subject: Subject) -> None:
    store = subject.store
    low = await add(store, {"task": "low"}, priority=-5)
    mid1 = await add(store, {"task": "mid1"})
    high = await add(store, {"task": "high"}, priority=10)
    mid2 = await add(store, {"task": "mid2"})
    other = await add(store, {"task": "other"}, queue="other")
    one = await claim(store, limit=1)
    assert [j.id for j in one] == [high.id]
    rest = await claim(store, limit=10)
    assert [j.id for j in rest] == [mid1.id, mid2.id, low.id]
    assert await claim(store) == [], "the other queue is not served"
    [got] = await claim(store, ["other", "default"])
    assert got.id == other.id


async def test_claim_sets_lease_and_attempt_and_never_takes_a_job_twice(subject: Subject) -> None:
    store = subject.store
    job = await add(store, {"task": "x", "n": 1}, max_attempts=3, timeout=9.0)
    [claimed] = await claim(store, worker_id="w1")
    assert (claimed.id, claimed.task, claimed.queue) == (job.id, "x", "default")
    assert claimed.payload == {"task": "x", "n": 1}
    assert (claimed.attempt, claimed.max_attempts, claimed.timeout) == (1, 3, 9.0)
    assert await claim(store, worker_id="w2") == []
    now = await store.get(job.id)
    assert now.status is JobStatus.PROCESSING
    assert now.attempts == 1
    assert now.started_at is not None


async def test_claim_waits_for_run_at(subject: Subject) -> None:
    store = subject.store
    now = await subject.now()
    later = await add(store, {"task": "later"}, run_at=now + timedelta(hours=1))
    sooner = await add(store, {"task": "sooner"}, delay=1800.0)
    assert await claim(store) == []
    soon = await claim(store, now=now + timedelta(minutes=31))
    assert [j.id for j in soon] == [sooner.id]
    [late] = await claim(store, now=now + timedelta(hours=2))
    assert late.id == later.id


async def test_each_claim_has_its_own_lease_token(subject: Subject) -> None:
    store = subject.store
    for n in range(3):
        await add(store, {"task": str(n)})
    first = await claim(store, limit=2)
    second = await claim(store, limit=2)
    assert first[0].lease.token == first[1].lease.token
    assert second[0].lease.token != first[0].lease.token


async def test_finish_writes_each_kind_of_end(subject: Subject) -> None:
    store = subject.store
    ids = [(await add(store, {"task": str(n)}, max_attempts=3)).id for n in range(4)]
    jobs = await claim(store, limit=4)
    before = await subject.now()
    retry_error = attempt_error("try again", kind="RuntimeError", attempt=1)
    written = await store.finish(
        [
            Finish(jobs[0].lease, Completed(raw({"ok": 1}))),
            Finish(jobs[1].lease, Retry(retry_error, delay=60.0)),
            Finish(jobs[2].lease, error("broken")),
            Finish(jobs[3].lease, Cancelled(cancelled_result(1))),
        ]
    )
    assert written == [True, True, True, True]
    done, again, failed, cancelled = [await store.get(job_id) for job_id in ids]

    assert done.status is JobStatus.COMPLETED
    assert done.result == {"ok": 1}
    assert done.finished_at is not None
    assert done.errors == []

    assert again.status is JobStatus.QUEUED
    assert again.result is None
    assert again.finished_at is None
    assert [e["error"] for e in again.errors] == ["try again"]
    assert again.run_at >= before + timedelta(seconds=60)
    assert again.attempts == 1, "the attempt counts"

    assert failed.status is JobStatus.FAILED
    assert failed.result["error"] == "broken"
    assert failed.errors == [failed.result]
    assert failed.finished_at is not None

    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.result["type"] == "Cancelled"
    assert cancelled.errors == []


async def test_a_retried_job_runs_again_when_due(subject: Subject) -> None:
    store = subject.store
    await add(store, {"task": "x"}, max_attempts=2)
    [first] = await claim(store)
    retry_error = attempt_error("later", kind="RuntimeError", attempt=1)
    await store.finish([Finish(first.lease, Retry(retry_error, delay=30.0))])
    assert await claim(store) == []
    [second] = await claim(store, now=(await subject.now()) + timedelta(seconds=31))
    assert second.id == first.id
    assert second.attempt == 2
    assert second.lease.token != first.lease.token


async def test_finish_is_fenced_by_the_lease(subject: Subject) -> None:
    store = subject.store
    job = await add(store, {"task": "x"})
    [claimed] = await claim(store)
    stale = Lease(job.id, uuid.uuid4())
    assert await store.finish([Finish(stale, Completed(raw("stale")))]) == [False]
    assert (await store.get(job.id)).status is JobStatus.PROCESSING
    both = await store.finish(
        [Finish(claimed.lease, Completed(raw("ok"))), Finish(stale, error("late"))]
    )
    assert both == [True, False]
    assert await store.finish([Finish(claimed.lease, error("twice"))]) == [False]
    done = await store.get(job.id)
    assert (done.status, done.result, done.errors) == (JobStatus.COMPLETED, "ok", [])
    assert await store.finish([]) == []


async def test_check_leases_extends_and_reports_lost_and_cancelled(subject: Subject) -> None:
    store = subject.store
    kept = await add(store, {"task": "kept"})
    asked = await add(store, {"task": "asked"})
    jobs = await claim(store, lease_seconds=10)
    leases = [job.lease for job in jobs]
    await store.cancel(asked.id, cancelled_result(0))
    gone = Lease(10**9, uuid.uuid4())
    check = await store.check_leases(LeaseCheckParams([*leases, gone]))
    assert check.lost == {gone.job_id}
    assert check.cancel_requested == {asked.id}
    await store.check_leases(LeaseCheckParams(leases, extend_by=3600))
    soon = (await subject.now()) + timedelta(seconds=60)
    assert await store.rescue(RescueParams(now=soon)) == [], "the leases were extended"
    assert (await store.get(kept.id)).status is JobStatus.PROCESSING
    empty = await store.check_leases(LeaseCheckParams([]))
    assert (empty.lost, empty.cancel_requested) == (frozenset(), frozenset())


async def test_release_hands_jobs_back_without_spending_an_attempt(subject: Subject) -> None:
    store = subject.store
    job = await add(store, {"task": "x"})
    asked = await add(store, {"task": "y"})
    jobs = await claim(store)
    await store.cancel(asked.id, cancelled_result(0))
    assert await store.release([Lease(job.id, uuid.uuid4())]) == 0, "a wrong token does nothing"
    assert await store.release([j.lease for j in jobs]) == 2
    back = await store.get(job.id)
    assert (back.status, back.attempts, back.started_at) == (JobStatus.QUEUED, 0, None)
    assert (await store.get(asked.id)).status is JobStatus.CANCELLED
    [again] = await claim(store)
    assert again.attempt == 1
    assert await store.release([]) == 0


async def test_rescue_returns_expired_leases_or_ends_their_jobs(subject: Subject) -> None:
    store = subject.store
    again = await add(store, {"task": "x"}, max_attempts=2)
    spent = await add(store, {"task": "x"}, max_attempts=1)
    asked = await add(store, {"task": "x"}, max_attempts=3)
    jobs = await claim(store, lease_seconds=30, worker_id="gone")
    await store.cancel(asked.id, cancelled_result(0))
    now = await subject.now()
    assert await store.rescue(RescueParams(now=now + timedelta(seconds=10))) == []
    rescued = await store.rescue(RescueParams(now=now + timedelta(seconds=31)))
    assert {r.id: r.status for r in rescued} == {
        again.id: JobStatus.QUEUED,
        spent.id: JobStatus.FAILED,
        asked.id: JobStatus.CANCELLED,
    }
    assert {r.worker for r in rescued} == {"gone"}
    back = await store.get(again.id)
    assert (back.status, back.attempts) == (JobStatus.QUEUED, 1)
    assert back.errors[0]["type"] == "LeaseExpired"
    assert back.errors[0]["worker"] == "gone"
    assert (await store.get(spent.id)).result["type"] == "LeaseExpired"
    # The lost worker comes back: its writes change nothing.
    stale = {job.id: job for job in jobs}[again.id]
    assert await store.finish([Finish(stale.lease, Completed(raw(1)))]) == [False]
    check = await store.check_leases(LeaseCheckParams([stale.lease], extend_by=30))
    assert check.lost == {again.id}
    assert await store.rescue(RescueParams(now=now + timedelta(seconds=31))) == []


async def test_claim_keeps_to_the_tasks_asked_for(subject: Subject) -> None:
    store = subject.store
    first = await add(store, {"task": "a"})
    await add(store, {"task": "b"})
    untasked = await add(store, {"n": 1})
    assert [j.id for j in await claim(store, tasks=["a", "c"])] == [first.id]
    assert await claim(store, tasks=["a"]) == []
    assert [j.id for j in await claim(store, tasks=[""])] == [untasked.id], "no task is ''"
    assert [j.task for j in await claim(store, tasks=None)] == ["b"]


async def test_a_claim_says_when_its_lease_ends(subject: Subject) -> None:
    store = subject.store
    await add(store, {"task": "x"})
    before = await subject.now()
    [job] = await claim(store, lease_seconds=100)
    assert job.lease_expires_at is not None
    ends_in = (job.lease_expires_at - before).total_seconds()
    assert 90 < ends_in < 110


async def test_held_reads_the_attempts_that_leases_still_hold(subject: Subject) -> None:
    store = subject.store
    kept = await add(store, {"task": "kept"}, max_attempts=4)
    asked = await add(store, {"task": "asked"}, queue="q")
    jobs = await claim(store, ["default", "q"])
    await store.cancel(asked.id, cancelled_result(0))
    wrong = Lease(kept.id, uuid.uuid4())
    held = {h.id: h for h in await store.held([*(j.lease for j in jobs), wrong])}
    assert set(held) == {kept.id, asked.id}
    assert (held[kept.id].attempt, held[kept.id].max_attempts) == (1, 4)
    assert (held[kept.id].task, held[kept.id].queue) == ("kept", "default")
    assert (held[kept.id].cancel_requested, held[asked.id].cancel_requested) == (False, True)
    assert held[asked.id].queue == "q"
    assert held[kept.id].worker_id == "w"
    [ended] = [j for j in jobs if j.id == kept.id]
    assert await store.finish([Finish(ended.lease, Completed(raw(1)))]) == [True]
    assert [h.id for h in await store.held([ended.lease])] == []
    assert await store.held([]) == []


async def test_extending_a_lease_says_until_when_and_counts_as_its_workers_beat(
    subject: Subject,
) -> None:
    store = subject.store
    await add(store, {"task": "x"})
    await store.worker_beat(WorkerBeat("w", "h", ["default"], "1.0", 1))
    [seen_before] = await store.workers()
    [job] = await claim(store, worker_id="w", lease_seconds=5)
    check = await store.check_leases(LeaseCheckParams([job.lease], extend_by=600))
    assert job.lease_expires_at is not None
    assert check.expires_at[job.id] > job.lease_expires_at
    [seen_after] = await store.workers()
    assert seen_after.last_seen_at >= seen_before.last_seen_at
    look = await store.check_leases(LeaseCheckParams([job.lease]))
    assert look.expires_at == {}, "only an extension says until when"


async def test_a_jobs_trace_context_reaches_its_claim(subject: Subject) -> None:
    store = subject.store
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await store.insert([NewJob(raw({"task": "one"}), EnqueueOptions(), None, parent)])
    await store.insert_alike([raw({"task": "two"})], EnqueueOptions(priority=-1), None, parent)
    await add(store, {"task": "untraced"}, priority=-2)
    claimed = await claim(store)
    assert [(j.task, j.trace_context) for j in claimed] == [
        ("one", parent),
        ("two", parent),
        ("untraced", None),
    ]
    assert all(j.waited >= 0 for j in claimed)
