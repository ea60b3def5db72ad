"""`jqs worker --url`: Python @task handlers run by a worker that reaches `jqs serve` over
the HTTP worker protocol, with no database in its environment. Real processes, real
PostgreSQL behind the server, real signals."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import StartJqs, serve_env
from tests.support.proc import JqsProcess, run_jqs
from tests.support.waiting import finished, job_when

ADMIN = "test-admin-key-0123456789abcdefghijkl"


@pytest.fixture
def server(dsn: str, start_jqs: StartJqs) -> JqsProcess:
    return start_jqs(
        "serve",
        "--no-worker",
        DATABASE_URL=dsn,
        JQS_ADMIN_KEY=ADMIN,
        JQS_RESCUE_INTERVAL="0.3",
    )


@pytest.fixture
def client(server: JqsProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        yield client


def _key(client: httpx.Client, *scopes: str) -> str:
    created = client.post("/keys", json={"name": "python-workers", "scopes": list(scopes)})
    assert created.status_code == 201, created.text
    secret: str = created.json()["secret"]
    return secret


def _worker(start_jqs: StartJqs, server: JqsProcess, key: str, **env: str) -> JqsProcess:
    settings = {
        "JQS_LEASE_SECONDS": "3",
        "JQS_WORKER_CONCURRENCY": "2",
        "JQS_RETRY_BACKOFF_BASE": "0.1",
        "JQS_SHUTDOWN_TIMEOUT": "1",
        **env,
    }
    # start_jqs's environment has no DATABASE_URL: the worker must need none.
    worker = start_jqs("worker", "--url", server.url, "--key", key, **settings)
    worker.wait_for("worker_started")
    return worker


def submit(client: httpx.Client, payload: dict[str, Any], **params: Any) -> int:
    answer = client.post("/jobs", json=payload, params=params)
    assert answer.status_code == 201, answer.text
    job_id: int = answer.json()["id"]
    return job_id


def _statuses(client: httpx.Client, ids: list[int]) -> list[str]:
    return [client.get(f"/jobs/{job_id}").json()["status"] for job_id in ids]


def _events(client: httpx.Client, job_id: int) -> list[str]:
    return [event["type"] for event in client.get(f"/jobs/{job_id}/events").json()]


def test_python_handlers_run_over_http_without_a_database(
    server: JqsProcess, client: httpx.Client, start_jqs: StartJqs, tmp_path: Path
) -> None:
    worker = _worker(start_jqs, server, _key(client, "worker"))
    done = job_when(client, submit(client, {"task": "sleep", "seconds": 0.1}), finished, timeout=30)
    assert (done["status"], done["result"]["slept"]) == ("completed", 0.1)
    # Fails, is retried after the worker's backoff, then completes.
    flaky = job_when(
        client, submit(client, {"task": "flaky", "times": 1}, max_attempts=3), finished, timeout=30
    )
    assert (flaky["status"], flaky["attempts"], flaky["result"]) == (
        "completed",
        2,
        {"succeeded_on": 2},
    )
    [error] = flaky["errors"]
    assert (error["type"], error["attempt"]) == ("RuntimeError", 1)
    assert "RuntimeError: attempt 1 fails" in error["traceback"]
    doomed = job_when(
        client, submit(client, {"task": "boom"}, max_attempts=2), finished, timeout=30
    )
    assert (doomed["status"], doomed["attempts"], doomed["result"]["type"]) == (
        "failed",
        2,
        "ValueError",
    )
    # Progress reports reach the job and its events.
    steps = submit(client, {"task": "steps", "steps": 3, "seconds": 0.4})
    job_when(client, steps, lambda job: job["progress"] is not None, timeout=30)
    assert job_when(client, steps, finished, timeout=30)["status"] == "completed"
    assert "job.progress" in _events(client, steps)
    # Cancelled while it runs: the worker notices within about a second.
    long = submit(client, {"task": "sleep", "seconds": 120})
    job_when(client, long, lambda job: job["status"] == "processing", timeout=30)
    assert client.post(f"/jobs/{long}/cancel").status_code == 202
    assert job_when(client, long, finished, timeout=15)["status"] == "cancelled"
    # The worker is listed as any other, and runs longer jobs than its lease.
    workers = client.get("/workers").json()
    assert any(w["id"] == worker.wait_for("worker_started")[0]["worker"] for w in workers)
    outlasting = submit(client, {"task": "sleep", "seconds": 5})
    done = job_when(client, outlasting, finished, timeout=30)
    assert (done["status"], done["attempts"], done["errors"]) == ("completed", 1, [])
    assert not (tmp_path / ".jqs").exists(), "no embedded database was started"


def test_sigterm_hands_back_what_has_notfinished_and_the_worker_leaves(
    server: JqsProcess, client: httpx.Client, start_jqs: StartJqs
) -> None:
    worker = _worker(start_jqs, server, _key(client, "worker"))
    ids = [submit(client, {"task": "sleep", "seconds": 60}) for _ in range(4)]
    deadline = time.monotonic() + 30
    while (statuses := _statuses(client, ids)).count("processing") < 2:
        assert time.monotonic() < deadline, statuses
        time.sleep(0.1)
    assert statuses.count("queued") == 2, "two slots, and nothing claimed ahead for slow jobs"
    running = [job_id for job_id, status in zip(ids, statuses, strict=True) if status != "queued"]
    worker_id = worker.wait_for("worker_started")[0]["worker"]
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    for job_id in ids:
        job = client.get(f"/jobs/{job_id}").json()
        assert (job["status"], job["attempts"]) == ("queued", 0), job
    for job_id in running:
        assert _events(client, job_id)[-1] == "job.released"
    assert worker.events("worker_handed_back")
    assert worker_id not in {w["id"] for w in client.get("/workers").json()}


def test_a_key_the_server_refuses_stops_the_worker_with_one_line(
    server: JqsProcess, client: httpx.Client, tmp_path: Path
) -> None:
    reader = _key(client, "jobs:read")
    for key, status in [("not-a-key-at-all", "401"), (reader, "403")]:
        done = run_jqs("worker", "--url", server.url, "--key", key, env=serve_env(), cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("jqs: the server refused this worker:"), line
        assert f"({status})" in line
