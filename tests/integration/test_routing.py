"""Queues, priorities, run_at, limits and pause, against a real PostgreSQL.

Time-dependent cases pass the claim an explicit `now` instead of sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from jqs.models import EnqueueOptions, JobStatus
from jqs.store import JobStore, QueueStore
from tests.support.jobs import raw


async def put(store: JobStore, name: str, **options: object) -> int:
    job, _ = await store.insert(raw({"task": name}), EnqueueOptions(**options))  # type: ignore[arg-type]
    return job.id


async def claim_ids(
    store: JobStore, queues: list[str], limit: int = 100, **kw: object
) -> list[int]:
    result = await store.claim(queues, limit=limit, lease_seconds=30, worker_id="t", **kw)  # type: ignore[arg-type]
    return [job.id for job in result.jobs]


@pytest.fixture
def queues(store: JobStore) -> QueueStore:
    return QueueStore(store._pool)


async def db_now(conn: asyncpg.Connection) -> datetime:
    value: datetime = await conn.fetchval("SELECT now()")
    return value


async def test_strict_priority_then_fifo(store: JobStore) -> None:
    low1 = await put(store, "low1", priority=-5)
    mid1 = await put(store, "mid1")
    high1 = await put(store, "high1", priority=10)
    mid2 = await put(store, "mid2")
    high2 = await put(store, "high2", priority=10)
    low2 = await put(store, "low2", priority=-5)
    claimed = []
    for _ in range(6):  # one at a time, as a busy worker would take them
        claimed += await claim_ids(store, ["default"], limit=1)
    assert claimed == [high1, high2, mid1, mid2, low1, low2]


async def test_run_at_is_never_early_and_orders_within_a_priority(
    store: JobStore, conn: asyncpg.Connection
) -> None:
    now = await db_now(conn)
    later = await put(store, "later", run_at=now + timedelta(hours=1))
    sooner = await put(store, "sooner", run_at=now + timedelta(minutes=30))
    delayed = await put(store, "delayed", delay=120.0)
    assert await claim_ids(store, ["default"]) == []
    assert await claim_ids(store, ["default"], now=now + timedelta(minutes=10)) == [delayed]
    assert await claim_ids(store, ["default"], now=now + timedelta(minutes=59)) == [sooner]
    assert await claim_ids(store, ["default"], now=now + timedelta(minutes=61)) == [later]


async def test_workers_get_only_their_queues_in_priority_order(store: JobStore) -> None:
    a = await put(store, "a", queue="a", priority=1)
    b = await put(store, "b", queue="b", priority=5)
    c = await put(store, "c", queue="c", priority=9)
    assert await claim_ids(store, ["a", "b"]) == [b, a]
    assert await claim_ids(store, ["a", "b"]) == []
    assert await claim_ids(store, ["c", "nothing"]) == [c]


async def test_pause_and_resume(store: JobStore, queues: QueueStore) -> None:
    job = await put(store, "x", queue="mail")
    await queues.update("mail", paused=True)
    assert await claim_ids(store, ["mail"]) == []
    await queues.update("mail", paused=False)
    assert await claim_ids(store, ["mail"]) == [job]


async def test_concurrency_limit_counts_running_jobs(store: JobStore, queues: QueueStore) -> None:
    ids = [await put(store, f"j{n}", queue="lim") for n in range(5)]
    await queues.update("lim", concurrency_limit=2)
    first = await store.claim(["lim"], limit=10, lease_seconds=30, worker_id="t")
    assert [j.id for j in first.jobs] == ids[:2]
    assert await claim_ids(store, ["lim"]) == [], "two are running: the limit is reached"
    await store.complete(first.jobs[0].id, first.jobs[0].lease_token, raw("ok"))
    assert await claim_ids(store, ["lim"]) == [ids[2]]
    await queues.update("lim", concurrency_limit=None)
    assert await claim_ids(store, ["lim"]) == ids[3:]


async def test_rate_limit_hands_out_tokens(store: JobStore, queues: QueueStore) -> None:
    for n in range(5):
        await put(store, f"j{n}", queue="slow")
    await queues.update("slow", rate_limit=10)
    result = await store.claim(["slow"], limit=10, lease_seconds=30, worker_id="t")
    # The bucket starts empty: nothing yet, and the store says when the next token comes.
    assert len(result.jobs) <= 1
    if not result.jobs:
        assert result.rate_wait is not None
        assert 0 < result.rate_wait <= 0.1


async def test_queue_settings_round_trip(queues: QueueStore, store: JobStore) -> None:
    await put(store, "x", queue="q1")
    settings = await queues.update("q1", concurrency_limit=3, rate_limit=2.5)
    assert (settings.concurrency_limit, settings.rate_limit, settings.paused) == (3, 2.5, False)
    settings = await queues.update("q1", paused=True)
    assert (settings.concurrency_limit, settings.rate_limit, settings.paused) == (3, 2.5, True)
    settings = await queues.update("q1", rate_limit=None)
    assert settings.rate_limit is None
    infos = {info.settings.name: info for info in await queues.infos()}
    assert infos["q1"].counts[JobStatus.QUEUED] == 1
    assert infos["q1"].settings.paused is True
    assert infos["q1"].oldest_queued_seconds is not None


async def test_batch_insert_is_one_transaction_in_order(store: JobStore) -> None:
    new = await store.insert_many(
        [
            (raw({"task": "a"}), EnqueueOptions(queue="x", priority=3)),
            (raw({"task": "b"}), EnqueueOptions(delay=60)),
            (raw({"task": "c"}), EnqueueOptions(max_attempts=9)),
        ]
    )
    assert [j.task for j in new] == ["a", "b", "c"]
    assert new[0].id < new[1].id < new[2].id
    assert new[1].run_at > new[0].run_at
    jobs = [await store.get(j.id) for j in new]
    assert (jobs[0].queue, jobs[0].priority) == ("x", 3)
    assert jobs[2].max_attempts == 9


@pytest.mark.parametrize(
    "options",
    [
        EnqueueOptions(),
        EnqueueOptions(queue="x", priority=-2, max_attempts=7, timeout_seconds=1.5),
        EnqueueOptions(delay=90),
        EnqueueOptions(run_at=datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)),
    ],
)
async def test_batch_of_alike_jobs_answers_what_was_stored(
    store: JobStore, options: EnqueueOptions
) -> None:
    # Jobs sharing their options take a statement of their own (one row back, not one per
    # job); what it answers must be what a read of each row gives, in input order.
    payloads = [{"task": "a", "n": 1}, {"n": 2}, {"task": 7}, {"task": "b", "x": [1, 2]}]
    new = await store.insert_many([(raw(p), options) for p in payloads])
    assert [j.task for j in new] == ["a", None, "7", "b"]
    assert [j.id for j in new] == sorted(j.id for j in new)
    for created, payload in zip(new, payloads, strict=True):
        job = await store.get(created.id)
        assert job.payload == payload
        assert (created.task, created.created_at, created.run_at) == (
            job.task,
            job.created_at,
            job.run_at,
        )
        assert (job.queue, job.priority, job.max_attempts, job.timeout_seconds) == (
            options.queue,
            options.priority,
            options.max_attempts,
            options.timeout_seconds,
        )
    if options.run_at is not None:
        assert new[0].run_at == options.run_at
    else:
        assert (new[0].run_at - new[0].created_at).total_seconds() == options.delay


async def test_delayed_job_starts_on_time_not_early(store: JobStore) -> None:
    import asyncio
    import time

    from jqs.tasks.registry import TaskRegistry
    from jqs.worker import WorkerPool

    started: list[float] = []
    ran = asyncio.Event()

    async def mark(payload: dict[str, object]) -> None:
        started.append(time.monotonic())
        ran.set()

    registry = TaskRegistry()
    registry.register("mark", mark)
    pool = WorkerPool(store, registry, concurrency=1, poll_interval=0.5)
    await pool.start()
    try:
        submitted = time.monotonic()
        await put(store, "mark", delay=0.8)
        await asyncio.wait_for(ran.wait(), 5)
    finally:
        await pool.stop(1)
    assert started, "the delayed job never started"
    waited = started[0] - submitted
    assert waited >= 0.8, f"started {0.8 - waited:.3f}s early"
    assert waited < 0.8 + 1.0, f"started {waited - 0.8:.2f}s after its run_at"


def test_task_default_queue() -> None:
    from jqs.tasks.defaults import JobDefaults
    from jqs.tasks.registry import TaskOptions, TaskRegistry, TaskSpec

    registry = TaskRegistry([TaskSpec.of("mail", lambda p: None, TaskOptions(queue="emails"))])
    defaults = JobDefaults(registry)
    assert defaults.queue("mail", None) == "emails"
    assert defaults.queue("mail", "urgent") == "urgent"
    assert defaults.queue("other", None) == "default"
