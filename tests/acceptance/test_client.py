"""jqs.client against a real `jqs serve`: every call, its errors, and jqs.enqueue waking a
running worker."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from jqs.client import (
    AsyncClient,
    Client,
    Conflict,
    EventType,
    Forbidden,
    JobSpec,
    JobStatus,
    NotFound,
    Progress,
    Unauthorized,
    ValidationError,
    enqueue,
)
from tests.acceptance.conftest import StartJqs
from tests.support.proc import JqsProcess

ADMIN = "test-admin-key-0123456789abcdefghijkl"


def _serve(start_jqs: StartJqs, dsn: str, **env: str) -> JqsProcess:
    return start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN, **env)


def test_the_sdk_does_every_call_against_a_real_server(dsn: str, start_jqs: StartJqs) -> None:
    proc = _serve(start_jqs, dsn)
    with Client(proc.url, ADMIN) as jqs:
        job = jqs.submit({"task": "sleep", "seconds": 0.05}, queue="default", priority=3)
        assert (job.status, job.priority, job.task) == (JobStatus.QUEUED, 3, "sleep")
        done = jqs.wait(job.id, timeout=30)
        assert done.status is JobStatus.COMPLETED
        assert done.result["slept"] == 0.05

        # One Idempotency-Key, one job, however often it is sent.
        first = jqs.submit({"task": "sleep"}, delay=3600, idempotency_key="order-17")
        again = jqs.submit({"task": "sleep"}, delay=3600, idempotency_key="order-17")
        assert again.id == first.id

        made = jqs.submit_many(
            [{"task": "sleep", "n": n} for n in range(4)]
            + [JobSpec({"task": "sleep", "n": 4}, queue="other", delay=3600)],
            chunk=2,
        )
        assert [j.payload["n"] for j in made] == [0, 1, 2, 3, 4]
        assert made[-1].queue == "other"
        pages = list(jqs.list(page_size=2))
        ids = [j.id for page in pages for j in page]
        assert ids == sorted(ids, reverse=True)
        assert set(ids) >= {job.id, first.id, *(j.id for j in made)}
        assert all(len(page) <= 2 for page in pages)

        failed = jqs.wait(jqs.submit({"task": "boom"}, max_attempts=1).id, timeout=30)
        assert failed.status is JobStatus.FAILED
        assert jqs.retry(failed.id).status is JobStatus.QUEUED

        cancelled = jqs.cancel(first.id)
        assert cancelled.status is JobStatus.CANCELLED
        with pytest.raises(Conflict, match="already cancelled"):
            jqs.cancel(first.id)
        with pytest.raises(NotFound):
            jqs.get(10**9)
        with pytest.raises(ValidationError) as invalid:
            jqs.submit({"task": "sleep"}, queue="no spaces")
        assert invalid.value.errors[0]["loc"] == "query.queue"

        settings = jqs.set_queue("other", paused=True, concurrency_limit=2)
        assert (settings.paused, settings.concurrency_limit) == (True, 2)
        assert jqs.set_queue("other", concurrency_limit=None).concurrency_limit is None
        other = {q.name: q for q in jqs.queues()}["other"]
        assert other.paused
        assert other.counts["queued"] == 1

        key = jqs.create_key("reader", ["jobs:read"])
        assert key.secret
        listed = jqs.keys()
        assert key.id in {k.id for k in listed}

    with Client(proc.url, key.secret) as reader:
        assert reader.get(job.id).id == job.id
        with pytest.raises(Forbidden) as refused:
            reader.submit({"task": "sleep"})
        assert refused.value.missing_scope == "jobs:submit"
    with Client(proc.url, ADMIN) as jqs:
        assert jqs.revoke_key(key.id).revoked_at is not None
    with Client(proc.url, key.secret) as reader, pytest.raises(Unauthorized):
        reader.get(job.id)


async def test_the_async_client_against_a_real_server(dsn: str, start_jqs: StartJqs) -> None:
    proc = _serve(start_jqs, dsn)
    async with AsyncClient(proc.url, ADMIN) as jqs:
        job = await jqs.submit({"task": "sleep", "seconds": 0.05})
        done = await jqs.wait(job.id, timeout=30)
        assert done.status is JobStatus.COMPLETED
        made = await jqs.submit_many([{"task": "sleep", "seconds": 0} for _ in range(3)])
        listed = [j.id async for page in jqs.list(page_size=2) for j in page]
        assert listed[:4] == [j.id for j in reversed(made)] + [job.id]
        assert "default" in {q.name for q in await jqs.queues()}
        with pytest.raises(NotFound):
            await jqs.cancel(10**9)


def test_a_running_jobs_progress_reads_as_a_progress_record(dsn: str, start_jqs: StartJqs) -> None:
    proc = _serve(start_jqs, dsn)
    with Client(proc.url, ADMIN) as jqs:
        job = jqs.submit({"task": "steps", "steps": 20, "seconds": 0.3})
        deadline = time.monotonic() + 30
        while (seen := jqs.get(job.id)).progress is None:
            assert time.monotonic() < deadline, seen
            time.sleep(0.1)
        report = seen.progress
        assert isinstance(report, Progress)
        assert 0 < report.progress <= 1
        assert report.message is not None
        assert report.message.startswith("step ")
        assert report.at.tzinfo is not None
        assert jqs.wait(job.id, timeout=60).result == {"steps": 20}


def _has_event_routes(url: str) -> bool:
    document = httpx.get(f"{url}/openapi.json", timeout=10).json()
    return "/jobs/{job_id}/events" in document["paths"]


def test_events_and_waiting_requests_against_a_real_server(dsn: str, start_jqs: StartJqs) -> None:
    proc = _serve(start_jqs, dsn)
    if not _has_event_routes(proc.url):
        pytest.skip("this server has no event routes yet (GET /jobs/{id}/events, ?wait)")
    with Client(proc.url, ADMIN) as jqs:
        done = jqs.submit({"task": "sleep", "seconds": 0.2}, wait=30)
        assert done.status is JobStatus.COMPLETED
        job = jqs.submit({"task": "sleep", "seconds": 0.2})
        kinds = [event.type for event in jqs.events(job.id)]
        assert kinds[0] is EventType.ENQUEUED
        assert kinds[-1] is EventType.COMPLETED
        # Resuming after the first event gives the rest, and ends with the job.
        first = next(iter(jqs.events(job.id)))
        rest = [event.type for event in jqs.events(job.id, last_event_id=first.cursor)]
        assert rest == kinds[1:]


async def test_a_job_enqueued_in_a_transaction_wakes_a_running_worker(
    dsn: str, start_jqs: StartJqs
) -> None:
    # Workers poll only every 30 s: the job is picked up this soon only if the NOTIFY sent
    # at commit wakes them.
    proc = _serve(start_jqs, dsn, JQS_POLL_INTERVAL="30")
    url = proc.url
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 30
        while not await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'jqs-listener'"
        ):
            assert time.monotonic() < deadline, "the worker's listener never connected"
            await asyncio.sleep(0.1)
        async with conn.transaction():
            made = await enqueue(conn, {"task": "sleep", "seconds": 0})
            await asyncio.sleep(1)  # not before the commit
            async with AsyncClient(url, ADMIN) as jqs:
                with pytest.raises(NotFound):
                    await jqs.get(made.id)
        async with AsyncClient(url, ADMIN) as jqs:
            done = await jqs.wait(made.id, timeout=15)
        assert done.status is JobStatus.COMPLETED
    finally:
        await conn.close()
