"""`jqs serve` and `jqs worker` as real processes: real HTTP, real signals."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.acceptance.conftest import StartJqs
from tests.integration.test_seed_examples import SEED_EXAMPLES


def _wait_status(client: httpx.Client, job_id: int, status: str, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] == status:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}, wanted {status}"
        time.sleep(0.05)


def test_seed_examples_over_real_http(tmp_path: Path, dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn)
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        assert client.get("/health").text == "OK"
        assert client.get("/ready").status_code == 200
        ids = []
        for payload in SEED_EXAMPLES:
            response = client.post("/jobs", json=payload)
            assert response.status_code == 201
            ids.append(response.json()["id"])
        for job_id in ids:
            job = _wait_status(client, job_id, "completed")
            assert job["result"]["message"] == "Job completed successfully"
        bad = client.post("/jobs", content=b"[]", headers={"Content-Type": "application/json"})
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
    proc.signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    started = proc.events("job_started")
    assert {line["job_id"] for line in started} == set(ids)
    for line in proc.events("job_completed"):
        assert {"job_id", "task", "status", "attempt"} <= set(line)
    access = proc.events("http_request")
    assert any(line["path"] == "/jobs" and line["status_code"] == 201 for line in access)
    assert not any(line["path"] in ("/health", "/ready") for line in access)


def test_sigterm_drains_short_jobs_and_hands_back_long_ones(
    tmp_path: Path, dsn: str, start_jqs: StartJqs
) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_SHUTDOWN_TIMEOUT="2", JQS_WORKER_CONCURRENCY="4")
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        short = [
            client.post("/jobs", json={"task": "sleep", "seconds": 0.5}).json()["id"]
            for _ in range(2)
        ]
        long = [
            client.post("/jobs", json={"task": kind, "seconds": 30}).json()["id"]
            for kind in ("sleep", "sync_sleep")
        ]
        proc.wait_for("job_started", count=4)
        began = time.monotonic()
        proc.signal(signal.SIGTERM)
        code = proc.wait(15)
        took = time.monotonic() - began
    assert code == 0, proc.stderr()
    assert took < 2 + 2, f"exit took {took:.1f}s with a 2s drain deadline"
    shutdown_at = proc.events("shutdown_requested")[0]["timestamp"]
    assert all(line["timestamp"] < shutdown_at for line in proc.events("job_started")), (
        "no claim happens after the signal"
    )
    # The service is gone; look at the rows through a fresh process of our own.
    check = start_jqs("serve", "--no-worker", DATABASE_URL=dsn)
    with httpx.Client(base_url=check.url, timeout=10) as client:
        for job_id in short:
            assert client.get(f"/jobs/{job_id}").json()["status"] == "completed"
        for job_id in long:
            job = client.get(f"/jobs/{job_id}").json()
            assert job["status"] == "queued"
            assert job["attempts"] == 0
        assert client.get("/jobs", params={"status": "processing"}).json() == []
    check.signal(signal.SIGINT)
    assert check.wait(15) == 0


def test_api_only_and_worker_only_processes_share_the_database(
    tmp_path: Path, dsn: str, start_jqs: StartJqs
) -> None:
    api = start_jqs("serve", "--no-worker", DATABASE_URL=dsn)
    worker = start_jqs("worker", DATABASE_URL=dsn, JQS_WORKER_CONCURRENCY="2")
    worker.wait_for("worker_started")
    with httpx.Client(base_url=api.url, timeout=10) as client:
        ids = [
            client.post("/jobs", json={"task": "sleep", "seconds": 0.01}).json()["id"]
            for _ in range(5)
        ]
        for job_id in ids:
            _wait_status(client, job_id, "completed")
    assert not api.events("job_started"), "--no-worker runs no jobs"
    assert {line["job_id"] for line in worker.events("job_completed")} == set(ids)
    assert not worker.events("api_listening"), "jqs worker serves no HTTP"
    for proc in (api, worker):
        proc.signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_second_signal_exits_at_once(tmp_path: Path, dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_SHUTDOWN_TIMEOUT="60")
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        client.post("/jobs", json={"task": "sleep", "seconds": 60})
        proc.wait_for("job_started")
    proc.signal(signal.SIGTERM)
    proc.wait_for("shutdown_requested")
    began = time.monotonic()
    proc.signal(signal.SIGTERM)
    code = proc.wait(10)
    assert time.monotonic() - began < 5
    assert code != 0
    assert proc.events("shutdown_forced")


def test_embedded_database_by_default(pg_tmp_path: Path, start_jqs: StartJqs) -> None:
    # No DATABASE_URL: embedded PostgreSQL in ./.jqs/pgdata.
    proc = start_jqs(cwd=pg_tmp_path)
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        job_id = client.post("/jobs", json=SEED_EXAMPLES[4]).json()["id"]
        _wait_status(client, job_id, "completed")
    proc.signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    data_dir = pg_tmp_path / ".jqs" / "pgdata"
    assert (data_dir / "PG_VERSION").exists()
    assert not (data_dir / "postmaster.pid").exists(), "the embedded server stopped with us"

    again = start_jqs(cwd=pg_tmp_path)
    with httpx.Client(base_url=again.url, timeout=10) as client:
        assert client.get(f"/jobs/{job_id}").json()["status"] == "completed", "data kept"
    again.signal(signal.SIGTERM)
    assert again.wait(20) == 0


def test_cancel_reaches_the_worker_process_running_the_job(start_jqs: StartJqs, dsn: str) -> None:
    api = start_jqs("serve", "--no-worker", DATABASE_URL=dsn)
    worker = start_jqs("worker", DATABASE_URL=dsn)
    with httpx.Client(base_url=api.url, timeout=10) as client:
        job_id = client.post("/jobs", json={"task": "sleep", "seconds": 30}).json()["id"]
        worker.wait_for("job_started")
        asked = client.post(f"/jobs/{job_id}/cancel")
        assert asked.status_code == 202
        began = time.monotonic()
        job = _wait_status(client, job_id, "cancelled", timeout=5)
        took = time.monotonic() - began
    assert took < 2.5, f"cancellation took {took:.1f}s"
    assert job["result"]["type"] == "Cancelled"
    assert worker.wait_for("job_cancelled")[0]["job_id"] == job_id


def test_post_jobs_access_line_carries_the_job(start_jqs: StartJqs, dsn: str) -> None:
    proc = start_jqs("serve", "--no-worker", DATABASE_URL=dsn)
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        job = client.post("/jobs", json={"task": "sleep"}).json()
        client.get(f"/jobs/{job['id']}")
    proc.signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    lines = proc.events("http_request")
    post = next(line for line in lines if line["method"] == "POST")
    assert (post["job_id"], post["status"], post["task"]) == (job["id"], "queued", "sleep")
    get = next(line for line in lines if line["method"] == "GET")
    assert "job_id" not in get, "fields bound for one request stay on its line"
