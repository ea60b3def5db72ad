"""The store contract, producers' and operators' side: insert, read, cancel, retry."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta

import pytest

from jqs.errors import JobNotFound, StoreError
from jqs.models import EnqueueOptions, IdempotencyKey, InsertOutcome, JobFilter, JobStatus, NewJob
from jqs.outcome import cancelled_result
from jqs.port import FindParams
from tests.contract.conftest import Subject
from tests.support.jobs import add, claim, new, raw


async def test_insert_and_get(subject: Subject) -> None:
    store = subject.store
    before = await subject.now()
    [inserted] = await store.insert([new({"task": "send", "to": "a@b.c"}, queue="mail")])
    job = await store.get(inserted.id)
    assert job.id == inserted.id
    assert job.payload == {"task": "send", "to": "a@b.c"}
    assert job.status is JobStatus.QUEUED
    assert job.task == inserted.task == "send"
    assert job.queue == "mail"
    assert job.result is None
    assert job.errors == []
    assert job.attempts == 0
    assert job.created_at == job.updated_at == inserted.created_at
    assert before <= job.run_at == inserted.run_at
    assert job.started_at is None
    assert job.finished_at is None
    assert job.cancel_requested is False


@pytest.mark.parametrize("job_id", [0, -1, 999_999, 2**63])
async def test_get_unknown_raises_not_found(subject: Subject, job_id: int) -> None:
    with pytest.raises(JobNotFound):
        await subject.store.get(job_id)


async def test_get_many_reads_the_jobs_that_exist_each_once(subject: Subject) -> None:
    first = await add(subject.store, {"task": "a"})
    second = await add(subject.store, {"task": "b"})
    got = await subject.store.get_many([second.id, 999_999, first.id, second.id, 0, 2**63])
    assert sorted(got, key=lambda job: job.id) == [first, second]
    assert await subject.store.get_many([]) == []


async def test_insert_many_keeps_order_and_options(subject: Subject) -> None:
    before = await subject.now()
    created = await subject.store.insert(
        [
            new({"task": "a"}, queue="x", priority=3),
            new({"task": "b"}, delay=60),
            new({"task": "c"}, max_attempts=9, timeout=2.5),
        ]
    )
    assert [c.task for c in created] == ["a", "b", "c"]
    assert created[0].id < created[1].id < created[2].id
    jobs = [await subject.store.get(c.id) for c in created]
    assert (jobs[0].queue, jobs[0].priority) == ("x", 3)
    assert jobs[1].run_at >= before + timedelta(seconds=60)
    assert (jobs[2].max_attempts, jobs[2].timeout) == (9, 2.5)


async def test_insert_is_all_or_nothing(subject: Subject) -> None:
    not_an_object = NewJob(raw([1, 2]))
    with pytest.raises(StoreError):
        await subject.store.insert([new({"task": "ok"}), not_an_object])
    assert await subject.store.find(FindParams()) == []


async def test_insert_alike_shares_options_and_times(subject: Subject) -> None:
    options = EnqueueOptions(queue="bulk", priority=2, max_attempts=4)
    alike = await subject.store.insert_alike([raw({"task": "a"}), raw({"n": 1})], options)
    assert alike.tasks == ["a", None]
    assert alike.ids[0] < alike.ids[1]
    for job_id in alike.ids:
        job = await subject.store.get(job_id)
        assert (job.queue, job.priority, job.max_attempts) == ("bulk", 2, 4)
        assert job.created_at == alike.created_at
        assert job.run_at == alike.run_at


async def test_insert_once_by_idempotency_key(subject: Subject) -> None:
    store = subject.store
    first, outcome = await store.insert_once(new({"task": "x"}), IdempotencyKey("k1", "d1"))
    assert outcome is InsertOutcome.CREATED
    again, outcome = await store.insert_once(new({"task": "x"}), IdempotencyKey("k1", "d1"))
    assert (again.id, outcome) == (first.id, InsertOutcome.DUPLICATE)
    other, outcome = await store.insert_once(new({"task": "y"}), IdempotencyKey("k1", "d2"))
    assert (other.id, outcome) == (first.id, InsertOutcome.CONFLICT)
    fresh, outcome = await store.insert_once(new({"task": "x"}), IdempotencyKey("k2", "d1"))
    assert outcome is InsertOutcome.CREATED
    assert fresh.id != first.id


async def test_find_is_newest_first_filtered_and_paged(subject: Subject) -> None:
    store = subject.store
    ids = [(await add(store, {"task": "a" if n % 2 else "b"})).id for n in range(6)]
    await store.cancel(ids[0], cancelled_result(0))
    everything = await store.find(FindParams(limit=10))
    assert [j.id for j in everything] == ids[::-1]
    page = await store.find(FindParams(limit=2, offset=2))
    assert [j.id for j in page] == ids[::-1][2:4]
    by_task = await store.find(FindParams(JobFilter(task="a"), limit=10))
    assert [j.id for j in by_task] == ids[1::2][::-1]
    cancelled = await store.find(FindParams(JobFilter(status=JobStatus.CANCELLED), limit=10))
    assert [j.id for j in cancelled] == [ids[0]]
    both = await store.find(FindParams(JobFilter(status=JobStatus.QUEUED, task="b"), limit=10))
    assert [j.id for j in both] == [ids[4], ids[2]]


async def test_cancel_queued_running_and_finished(subject: Subject) -> None:
    store = subject.store
    queued = await add(store, {"task": "q"})
    change = await store.cancel(queued.id, cancelled_result(0))
    assert change.changed
    assert change.job.status is JobStatus.CANCELLED
    assert change.job.result["type"] == "Cancelled"
    assert change.job.finished_at is not None

    running = await add(store, {"task": "r"})
    await claim(store)
    change = await store.cancel(running.id, cancelled_result(0))
    assert change.changed
    assert change.job.status is JobStatus.PROCESSING, "its worker ends it"
    assert change.job.cancel_requested

    change = await store.cancel(queued.id, cancelled_result(0))
    assert not change.changed, "a finished job stays as it is"
    with pytest.raises(JobNotFound):
        await store.cancel(10**9, cancelled_result(0))


async def test_retry_gives_failed_and_cancelled_jobs_fresh_attempts(subject: Subject) -> None:
    store = subject.store
    job = await add(store, {"task": "x"})
    await store.cancel(job.id, cancelled_result(0))
    change = await store.retry(job.id)
    assert change.changed
    assert change.job.status is JobStatus.QUEUED
    assert change.job.attempts == 0
    assert change.job.result is None
    assert change.job.cancel_requested is False
    assert not (await store.retry(job.id)).changed, "a queued job is not retried"
    with pytest.raises(JobNotFound):
        await store.retry(10**9)


@pytest.mark.parametrize(
    "options",
    [
        EnqueueOptions(),
        EnqueueOptions(queue="x", priority=-2, max_attempts=7, timeout=1.5),
        EnqueueOptions(delay=90),
        EnqueueOptions(run_at=datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)),
    ],
)
async def test_what_an_insert_answers_is_what_was_stored(
    subject: Subject, options: EnqueueOptions
) -> None:
    # The API answers a POST from what the insert returned, without reading the rows back:
    # that must be what a read of each row gives, in input order.
    payloads = [{"task": "a", "n": 1}, {"n": 2}, {"task": 7}, {"task": "b", "x": [1, 2]}]
    created = await subject.store.insert([NewJob(raw(p), options) for p in payloads])
    assert [j.task for j in created] == ["a", None, "7", "b"]
    assert [j.id for j in created] == sorted(j.id for j in created)
    for new_job, payload in zip(created, payloads, strict=True):
        job = await subject.store.get(new_job.id)
        assert job.payload == payload
        assert (new_job.task, new_job.created_at, new_job.run_at) == (
            job.task,
            job.created_at,
            job.run_at,
        )
        assert (job.queue, job.priority, job.max_attempts, job.timeout) == (
            options.queue,
            options.priority,
            options.max_attempts,
            options.timeout,
        )
    if options.run_at is not None:
        assert created[0].run_at == options.run_at
    else:
        assert (created[0].run_at - created[0].created_at).total_seconds() == options.delay


async def test_find_before_id_is_a_keyset_cursor(subject: Subject) -> None:
    store = subject.store
    ids = [(await add(store, {"task": "a" if n % 3 else "b"})).id for n in range(9)]
    newest_first = ids[::-1]
    seen: list[int] = []
    before: int | None = None
    while page := await store.find(FindParams(limit=4, before_id=before)):
        seen += [job.id for job in page]
        before = page[-1].id
    assert seen == newest_first
    # Filters and offsets apply below the cursor: pages after it.
    below = await store.find(FindParams(JobFilter(task="a"), limit=2, offset=1, before_id=ids[7]))
    # task "a" below ids[7]: ids 5, 4, 2, 1 (newest first); skip one, take two.
    assert [job.id for job in below] == [ids[4], ids[2]]
    assert await store.find(FindParams(before_id=ids[0])) == []


async def test_find_text_is_find_in_bounded_chunks_with_json_as_text(subject: Subject) -> None:
    store = subject.store
    noise = base64.b64encode(os.urandom(150_000)).decode()  # 200 kB that barely compresses
    payloads: list[dict[str, object]] = [
        {"task": "small", "n": 1, "text": 'é " \\ \u2028'},
        *({"task": "big", "n": n, "blob": noise[n:]} for n in range(12)),
        {"task": "repetitive", "blob": "a" * 300_000},  # compresses well: size unknown
        {"task": "small", "n": 2},
    ]
    ids = [(await add(store, payload)).id for payload in payloads]
    await store.cancel(ids[0], cancelled_result(0))  # a result, and a finished status
    chunks = [list(chunk) async for chunk in store.find_text(FindParams(limit=100))]
    listed = [job for chunk in chunks for job in chunk]
    assert [job.id for job in listed] == ids[::-1]
    assert [job.job() for job in listed] == [await store.get(i) for i in ids[::-1]]
    for chunk in chunks:
        text = sum(len(job.payload) + len(job.result) + len(job.errors) for job in chunk)
        assert len(chunk) == 1 or text <= 2 * 1024 * 1024, [job.id for job in chunk]
    assert any(len(chunk) == 1 and chunk[0].id == ids[13] for chunk in chunks)
    # The same page, filtered and below a cursor.
    params = FindParams(JobFilter(task="big"), limit=3, offset=1, before_id=ids[10])
    by_task = [job.id async for chunk in store.find_text(params) for job in chunk]
    assert by_task == [ids[8], ids[7], ids[6]]
