"""The store contract: queue limits, queue and worker listings, pruning, schedules."""

from __future__ import annotations

from datetime import timedelta

from jqs.models import JobStatus, NewJob
from jqs.outcome import Completed
from jqs.port import ClaimParams, Finish, PruneParams, QueuePatch, ScheduleFire, WorkerBeat
from tests.contract.conftest import Subject
from tests.support.jobs import add, claim, raw


def patch(name: str, **fields: object) -> QueuePatch:
    return QueuePatch(name, **fields, given=frozenset(fields))  # type: ignore[arg-type]


async def test_pause_and_resume(subject: Subject) -> None:
    store = subject.store
    job = await add(store, {"task": "x"}, queue="mail")
    await store.queue_update(patch("mail", paused=True))
    result = await store.claim(ClaimParams(["mail"], 10, 30, "w"))
    assert result.jobs == []
    assert result.limited, "a paused queue may still hold jobs"
    await store.queue_update(patch("mail", paused=False))
    assert [j.id for j in await claim(store, ["mail"])] == [job.id]


async def test_concurrency_limit_counts_running_jobs(subject: Subject) -> None:
    store = subject.store
    ids = [(await add(store, {"task": f"j{n}"}, queue="lim")).id for n in range(5)]
    await store.queue_update(patch("lim", concurrency_limit=2))
    first = await claim(store, ["lim"], limit=10)
    assert [j.id for j in first] == ids[:2]
    assert await claim(store, ["lim"]) == [], "two are running: the limit is reached"
    await store.finish([Finish(first[0].lease, Completed(raw("ok")))])
    assert [j.id for j in await claim(store, ["lim"])] == [ids[2]]
    await store.queue_update(patch("lim", concurrency_limit=None))
    assert [j.id for j in await claim(store, ["lim"])] == ids[3:]


async def test_rate_limit_hands_out_tokens_as_time_passes(subject: Subject) -> None:
    store = subject.store
    for n in range(5):
        await add(store, {"task": f"j{n}"}, queue="slow")
    await store.queue_update(patch("slow", rate_limit=10))
    # The bucket starts empty: the store says when the next token comes.
    result = await store.claim(ClaimParams(["slow"], 10, 30, "w"))
    taken = len(result.jobs)
    assert taken <= 1
    if not taken:
        assert result.rate_wait is not None
        assert 0 < result.rate_wait <= 0.1
    await subject.pass_time(0.25)
    # The bucket holds a tenth of a second's worth at most: one job at 10 a second.
    later = await store.claim(ClaimParams(["slow"], 10, 30, "w"))
    assert len(later.jobs) == 1


async def test_queue_settings_and_infos(subject: Subject) -> None:
    store = subject.store
    await add(store, {"task": "x"}, queue="q1")
    settings = await store.queue_update(patch("q1", concurrency_limit=3, rate_limit=2.5))
    assert (settings.concurrency_limit, settings.rate_limit, settings.paused) == (3, 2.5, False)
    settings = await store.queue_update(patch("q1", paused=True))
    assert (settings.concurrency_limit, settings.rate_limit, settings.paused) == (3, 2.5, True)
    settings = await store.queue_update(patch("q1", rate_limit=None))
    assert settings.rate_limit is None
    await store.queue_update(patch("empty", paused=False))
    await store.worker_beat(WorkerBeat("w1", "host", ["q1", "served"], "1.0", 5))
    await subject.pass_time(0.01)
    infos = {info.settings.name: info for info in await store.queue_infos()}
    assert sorted(infos) == ["empty", "q1", "served"]
    assert infos["q1"].counts[JobStatus.QUEUED] == 1
    assert infos["q1"].counts[JobStatus.FAILED] == 0
    assert infos["q1"].settings.paused is True
    assert infos["q1"].oldest_queued_seconds is not None
    assert infos["q1"].workers == ["w1"]
    assert infos["empty"].workers == []
    assert infos["served"].counts[JobStatus.QUEUED] == 0


async def test_workers_beat_list_and_go(subject: Subject) -> None:
    store = subject.store
    await store.worker_beat(WorkerBeat("b", "h1", ["default"], "1.0", 5, running=2))
    await store.worker_beat(WorkerBeat("a", "h2", ["x", "y"], "1.0", 1))
    workers = await store.workers()
    assert [w.id for w in workers] == ["a", "b"]
    b = workers[1]
    assert (b.host, b.queues, b.version, b.concurrency, b.running) == (
        "h1",
        ["default"],
        "1.0",
        5,
        2,
    )
    assert b.started_at <= b.last_seen_at
    await store.worker_beat(WorkerBeat("b", "h1", ["default"], "1.0", 5, running=0))
    assert [w.running for w in await store.workers()] == [0, 0]
    await store.worker_gone("a")
    assert [w.id for w in await store.workers()] == ["b"]
    await subject.pass_time(0.05)
    assert await store.workers_forget(3600) == 0
    assert await store.workers_forget(0.01) == 1
    assert await store.workers() == []


async def test_prune_deletes_old_finished_jobs_only(subject: Subject) -> None:
    store = subject.store
    old = [await add(store, {"task": str(n)}) for n in range(3)]
    for job in await claim(store):
        await store.finish([Finish(job.lease, Completed(raw(1)))])
    queued = await add(store, {"task": "queued"})
    await subject.pass_time(0.05)
    assert await store.prune(PruneParams(older_than=3600)) == 0
    assert await store.prune(PruneParams(older_than=0.01, limit=2)) == 2
    assert await store.prune(PruneParams(older_than=0.01, limit=2)) == 1
    assert (await store.get(queued.id)).status is JobStatus.QUEUED
    assert all(job.id != queued.id for job in old)


async def test_each_scheduled_time_is_enqueued_once(subject: Subject) -> None:
    store = subject.store
    now = await subject.now()
    start = now - timedelta(minutes=10)
    await store.schedule_register("tick", "* * * * *", start)
    job = NewJob(raw({"task": "tick"}))
    first = await store.schedule_fire(ScheduleFire("tick", now - timedelta(minutes=1), job))
    assert first is not None
    assert await store.schedule_fire(ScheduleFire("tick", now - timedelta(minutes=1), job)) is None
    assert await store.schedule_fire(ScheduleFire("tick", now - timedelta(minutes=2), job)) is None
    second = await store.schedule_fire(ScheduleFire("tick", now, job))
    assert second is not None
    assert second != first
    assert (await store.get(second)).payload == {"task": "tick"}
    # Registering again with the same expression keeps the progress; a new one restarts it.
    await store.schedule_register("tick", "* * * * *", start)
    assert await store.schedule_fire(ScheduleFire("tick", now, job)) is None
    await store.schedule_register("tick", "*/2 * * * *", now - timedelta(minutes=5))
    assert await store.schedule_fire(ScheduleFire("tick", now, job)) is None, "same time: once"
    assert await store.schedule_fire(ScheduleFire("nobody", now, job)) is None


async def test_max_queued_is_kept_and_cleared(subject: Subject) -> None:
    store = subject.store
    settings = await store.queue_update(patch("mail", max_queued=2, paused=True))
    assert (settings.max_queued, settings.paused) == (2, True)
    settings = await store.queue_update(patch("mail", paused=False))
    assert settings.max_queued == 2, "a field left out stays"
    infos = {info.settings.name: info for info in await store.queue_infos()}
    assert infos["mail"].settings.max_queued == 2
    settings = await store.queue_update(patch("mail", max_queued=None))
    assert settings.max_queued is None


async def test_queue_depths_count_queued_jobs_up_to_the_bound(subject: Subject) -> None:
    store = subject.store
    await store.queue_update(patch("small", max_queued=3))
    await store.queue_update(patch("big", max_queued=100))
    await store.queue_update(patch("unbounded", paused=False))
    for _ in range(5):
        await add(store, {"task": "x"}, queue="small")
    for _ in range(2):
        await add(store, {"task": "x"}, queue="big")
    await add(store, {"task": "x"}, queue="unbounded")
    depths = {d.name: (d.max_queued, d.queued) for d in await store.queue_depths()}
    assert depths == {"small": (3, 3), "big": (100, 2)}, "counted no further than the bound"
    claimed = await claim(store, ["big"], limit=1)
    assert len(claimed) == 1
    depths = {d.name: d.queued for d in await store.queue_depths()}
    assert depths["big"] == 1, "running jobs are not queued"


async def test_queue_delete_only_without_unfinished_jobs(subject: Subject) -> None:
    store = subject.store
    await store.queue_update(patch("mail", concurrency_limit=2, max_queued=10))
    await add(store, {"task": "x"}, queue="mail")
    await add(store, {"task": "y"}, queue="mail")
    refused = await store.queue_delete("mail")
    assert (refused.found, refused.unfinished, refused.removed) == (True, 2, False)
    [running] = await claim(store, ["mail"], limit=1)
    assert (await store.queue_delete("mail")).unfinished == 2, "a running job counts"
    [queued] = await claim(store, ["mail"], limit=1)
    await store.finish([Finish(running.lease, Completed(raw({})))])
    await store.finish([Finish(queued.lease, Completed(raw({})))])
    removed = await store.queue_delete("mail")
    assert (removed.found, removed.unfinished, removed.removed) == (True, 0, True)
    infos = {info.settings.name: info for info in await store.queue_infos()}
    assert infos["mail"].settings.concurrency_limit is None, "listed by its jobs, no settings"
    assert infos["mail"].settings.max_queued is None
    assert await store.queue_depths() == []
    unknown = await store.queue_delete("mail")
    assert (unknown.found, unknown.unfinished, unknown.removed) == (False, 0, False)
    # A queue with jobs but no settings has nothing to remove, and says why not.
    await add(store, {"task": "z"}, queue="bare")
    bare = await store.queue_delete("bare")
    assert (bare.found, bare.unfinished) == (False, 1)


async def test_queue_activity_counts_only_unfinished_jobs(subject: Subject) -> None:
    store = subject.store
    for n in range(3):
        await add(store, {"task": f"m{n}"}, queue="mail")
    await add(store, {"task": "later"}, queue="mail", delay=3600)
    await add(store, {"task": "done"}, queue="done")
    [running] = await claim(store, ["mail"], limit=1)
    [done] = await claim(store, ["done"])
    await store.finish([Finish(done.lease, Completed(raw(1)))])
    await subject.pass_time(0.02)
    [mail] = await store.queue_activity()
    assert (mail.name, mail.queued, mail.running) == ("mail", 3, 1)
    assert mail.oldest_wait_seconds is not None
    assert mail.oldest_wait_seconds > 0
    assert running.queue == "mail"
