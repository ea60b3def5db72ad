"""Waiting for jobs and following their events, on real `jqs` processes over real HTTP."""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import psutil
import pytest

from tests.acceptance.conftest import StartJqs

ADMIN_KEY = "test-admin-key-0123456789abcdefghijkl"
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
SSE = {**HEADERS, "Accept": "text/event-stream"}


def _client(url: str, timeout: float = 30) -> httpx.Client:
    return httpx.Client(base_url=url, headers=HEADERS, timeout=timeout)


def _lag(job: dict[str, Any], answered: float) -> float:
    """Seconds from the job's end (the database's clock) to the answer (this host's: the
    same machine's)."""
    return answered - datetime.fromisoformat(job["finished_at"]).timestamp()


def _held_to_milliseconds(lags: list[float]) -> None:
    """Most answers within milliseconds; none late by more than a hiccup. (The log is read
    below the oldest transaction running on the whole PostgreSQL server: another test's
    CREATE DATABASE on a shared server holds every answer back while it runs.)"""
    assert statistics.median(lags) < 1.0, lags
    assert max(lags) < 3.0, lags


def _answer_lags(url: str, rounds: int) -> list[float]:
    lags = []
    with _client(url) as client:
        for _ in range(rounds):
            job = client.post("/jobs", json={"task": "sleep", "seconds": 0.2}).json()
            answer = client.get(f"/jobs/{job['id']}?wait=10")
            answered = time.time()
            assert answer.status_code == 200
            done = answer.json()
            assert done["status"] == "completed", done
            lags.append(_lag(done, answered))
    return lags


def test_a_waiter_gets_the_result_as_the_job_completes(dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY)
    lags = _answer_lags(proc.url, 20)
    print(
        f"same process: completion -> answer p50 {statistics.median(lags) * 1000:.1f} ms, "
        f"max {max(lags) * 1000:.1f} ms"
    )
    _held_to_milliseconds(lags)


def test_a_waiter_hears_of_a_job_another_process_completes(dsn: str, start_jqs: StartJqs) -> None:
    api = start_jqs("serve", "--no-worker", DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY)
    url = api.url
    start_jqs("worker", DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY).wait_for("worker_started")
    _answer_lags(url, 3)  # the worker's notifier looks for listeners once a second
    time.sleep(1.5)
    lags = _answer_lags(url, 20)
    print(
        f"other process: completion -> answer p50 {statistics.median(lags) * 1000:.1f} ms, "
        f"max {max(lags) * 1000:.1f} ms"
    )
    _held_to_milliseconds(lags)


def test_post_with_wait_answers_with_the_result(dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY)
    with _client(proc.url) as client:
        answer = client.post("/jobs?wait=10", json={"task": "sleep", "seconds": 0.1})
        assert answer.status_code == 201
        assert answer.json()["status"] == "completed"
        assert answer.json()["result"]["slept"] == 0.1
        slow = client.post("/jobs?wait=0.3", json={"task": "sleep", "seconds": 5})
        assert slow.status_code == 201
        assert slow.json()["status"] in ("queued", "processing")


async def test_no_wait_misses_a_job_that_ends_as_the_wait_begins(
    dsn: str, start_jqs: StartJqs
) -> None:
    """Jobs that take no time, waited for as soon as they are submitted: some end before
    the wait registers, some between its read and its wait, some after."""
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY, JQS_WORKER_CONCURRENCY="8")
    # A connection each request: the server closes one idle for JQS_KEEP_ALIVE_TIMEOUT,
    # and on a loaded machine it can do so while the client takes that connection up
    # again (the client then reads a reset, whatever its own expiry).
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=proc.url, headers=HEADERS, timeout=90, limits=limits
    ) as client:

        async def one() -> tuple[str, float]:
            job = (await client.post("/jobs", json={"task": "sleep", "seconds": 0})).json()
            began = time.monotonic()
            answer = await client.get(f"/jobs/{job['id']}?wait=60")
            return answer.json()["status"], time.monotonic() - began

        results = await asyncio.gather(*(one() for _ in range(300)))
    assert {status for status, _ in results} == {"completed"}
    # A missed end would show as a wait that ran its full 60 s.
    assert max(took for _, took in results) < 45, "a wait ran out: an end was missed"


async def _open_waits(port: int, ids: list[int], wait: float) -> list[asyncio.StreamReader]:
    """One connection per job, each sending GET /jobs/{id}?wait=...; light enough for
    10,000 on a small machine (an HTTP client library per request is not)."""
    readers = []
    for job_id in ids:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /jobs/{job_id}?wait={wait:g} HTTP/1.1\r\nHost: jqs\r\n"
            f"Authorization: Bearer {ADMIN_KEY}\r\nConnection: close\r\n\r\n".encode()
        )
        readers.append(reader)
        reader.writer = writer  # type: ignore[attr-defined]
    return readers


async def _db_connections(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return count
    finally:
        await conn.close()


WAITERS = 10_000


@pytest.mark.timeout(600)
async def test_ten_thousand_waiters_on_one_process(dsn: str, start_jqs: StartJqs) -> None:
    api = start_jqs(
        "serve",
        "--no-worker",
        DATABASE_URL=dsn,
        JQS_ADMIN_KEY=ADMIN_KEY,
        JQS_MAX_CONNECTIONS=str(WAITERS + 1000),
        JQS_DB_POOL_MAX="10",
    )
    with _client(api.url, timeout=60) as client:
        ids: list[int] = []
        for _ in range(WAITERS // 1000):
            batch = [{"payload": {"task": "sleep", "seconds": 0}, "queue": "held"}] * 1000
            answer = client.post("/jobs/batch", json={"jobs": batch})
            assert answer.status_code == 201, answer.text
            ids += [job["id"] for job in answer.json()]
    before = await _db_connections(dsn)
    server = psutil.Process(api.proc.pid)
    rss_before = server.memory_info().rss
    readers = await _open_waits(api.port, ids, wait=60)
    await asyncio.sleep(3)  # let the server take in every request
    during = await _db_connections(dsn)
    rss_during = server.memory_info().rss
    print(
        f"{len(readers)} waiters: database connections {before} before, {during} while "
        f"waiting; server RSS {rss_before / 2**20:.0f} MiB -> {rss_during / 2**20:.0f} MiB"
    )
    assert during <= 15, "waiters must not hold database connections"
    began = time.monotonic()
    worker = start_jqs(
        "worker",
        DATABASE_URL=dsn,
        JQS_ADMIN_KEY=ADMIN_KEY,
        JQS_QUEUES="held",
        JQS_WORKER_CONCURRENCY="50",
    )
    statuses: list[str] = []
    for reader in readers:
        raw = await asyncio.wait_for(reader.read(), 120)
        statuses.append(httpx.Response(200, content=raw.split(b"\r\n\r\n", 1)[1]).json()["status"])
        reader.writer.close()  # type: ignore[attr-defined]
    took = time.monotonic() - began
    print(f"all {len(statuses)} answered {took:.1f} s after the worker started")
    assert statuses == ["completed"] * WAITERS
    assert await _db_connections(dsn) <= 20
    worker.kill()


def _read_sse(lines: Iterator[str], want: int | None = None) -> list[dict[str, str]]:
    """The events of an SSE response's lines, until it ends or `want` have come."""
    frames: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in lines:
        if not line:
            if "id" in current:
                frames.append(current)
                if want is not None and len(frames) >= want:
                    return frames
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            current[field] = value
    return frames


def test_a_stream_resumed_on_another_process_gets_every_event_once(
    dsn: str, start_jqs: StartJqs
) -> None:
    first = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY, JQS_WORKER_CONCURRENCY="4")
    second = start_jqs("serve", "--no-worker", DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY)
    jobs = 40
    got: list[dict[str, str]] = []
    with _client(first.url) as client, client.stream("GET", "/events", headers=SSE) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")  # subscribed: jobs from now on count
        ids = [
            client.post("/jobs", json={"task": "sleep", "seconds": 0.01}).json()["id"]
            for _ in range(jobs)
        ]
        got += _read_sse(lines, want=jobs)  # then the client goes away mid-stream
    last = got[-1]["id"]
    with (
        _client(second.url) as client,
        client.stream("GET", "/events", headers={**SSE, "Last-Event-ID": last}) as stream,
    ):
        got += _read_sse(stream.iter_lines(), want=3 * jobs - len(got))
    seen = [(int(frame["id"].split("-")[1]), frame["event"]) for frame in got]
    assert len(seen) == len(set(seen)), "an event came twice"
    with _client(second.url) as client:
        timeline = {
            (event["id"], event["type"])
            for job_id in ids
            for event in client.get(f"/jobs/{job_id}/events").json()
        }
    assert set(seen) == timeline
    assert len(timeline) == 3 * jobs


def test_a_jobs_stream_resumes_on_another_process_and_ends_with_the_job(
    dsn: str, start_jqs: StartJqs
) -> None:
    first = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY)
    second = start_jqs("serve", "--no-worker", DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY)
    with _client(first.url) as client:
        job = client.post("/jobs", json={"task": "sleep", "seconds": 1}).json()
        with client.stream("GET", f"/jobs/{job['id']}/events", headers=SSE) as stream:
            [enqueued] = _read_sse(stream.iter_lines(), want=1)
    assert enqueued["event"] == "job.enqueued"
    with (
        _client(second.url) as client,
        client.stream(
            "GET",
            f"/jobs/{job['id']}/events",
            headers={**SSE, "Last-Event-ID": enqueued["id"]},
        ) as stream,
    ):
        rest = _read_sse(stream.iter_lines())  # ends by itself with the job
    assert [frame["event"] for frame in rest] == ["job.started", "job.completed"]
    with _client(second.url) as client:
        timeline = client.get(f"/jobs/{job['id']}/events").json()
    assert [str(event["id"]) for event in timeline] == [enqueued["id"], *(f["id"] for f in rest)]


def test_sigterm_answers_waits_and_ends_streams_promptly(dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY, JQS_SHUTDOWN_TIMEOUT="20")
    with _client(proc.url, timeout=60) as client:
        job = client.post("/jobs?queue=nobody", json={"task": "sleep"}).json()

        async def during_shutdown() -> tuple[dict[str, Any], list[str], float]:
            async with httpx.AsyncClient(base_url=proc.url, headers=HEADERS, timeout=60) as c:
                waiting = asyncio.create_task(c.get(f"/jobs/{job['id']}?wait=60"))
                lines: list[str] = []

                async def follow() -> None:
                    async with c.stream("GET", "/events", headers=SSE) as stream:
                        async for line in stream.aiter_lines():
                            lines.append(line)

                following = asyncio.create_task(follow())
                await asyncio.sleep(1)
                began = time.monotonic()
                proc.signal(signal.SIGTERM)
                answer = await waiting
                await following
                return answer.json(), lines, time.monotonic() - began

        answer, lines, took = asyncio.run(during_shutdown())
    assert answer["status"] == "queued"
    assert lines[0].startswith("retry:")
    assert took < 5, f"waits and streams took {took:.1f}s to end; the drain deadline is 20s"
    assert proc.wait(15) == 0


def test_a_keys_limits_apply_to_events_and_waits(dsn: str, start_jqs: StartJqs) -> None:
    # No worker serves these queues; streams end after 2 s, so that one is read whole.
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY, JQS_SSE_MAX_DURATION="2")
    with _client(proc.url) as admin:
        made = admin.post(
            "/keys", json={"name": "mail", "scopes": ["jobs:read"], "queues": ["emails"]}
        )
        assert made.status_code == 201, made.text
        mine = admin.post("/jobs?queue=emails", json={"task": "sleep", "seconds": 0}).json()
        other = admin.post("/jobs?queue=media", json={"task": "sleep", "seconds": 0}).json()
        submit_only = admin.post("/keys", json={"name": "s", "scopes": ["jobs:submit"]}).json()
    key = {"Authorization": f"Bearer {made.json()['secret']}"}
    with httpx.Client(base_url=proc.url, headers=key, timeout=30) as client:
        assert client.get(f"/jobs/{other['id']}/events").status_code == 404
        assert client.get(f"/jobs/{other['id']}?wait=1").status_code == 404
        assert client.get(f"/jobs/{mine['id']}/events").status_code == 200
        refused = client.get("/events?queue=media", headers={"Accept": "text/event-stream"})
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        with client.stream(
            "GET", "/events", headers={"Accept": "text/event-stream", "Last-Event-ID": "1-0"}
        ) as stream:
            frames = _read_sse(stream.iter_lines())  # from the log's start
        assert [(json.loads(f["data"])["job_id"], f["event"]) for f in frames] == [
            (mine["id"], "job.enqueued")
        ]
    with httpx.Client(base_url=proc.url, timeout=30) as client:
        bare = client.get("/events")
        assert bare.status_code == 401
        scoped = client.get("/events", headers={"Authorization": f"Bearer {submit_only['secret']}"})
        assert scoped.status_code == 403
