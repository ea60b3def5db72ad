"""A real `jqs serve`: the `http` task cannot call JQS's own API unless JQS_HTTP_ALLOW says so,
and JQS_HTTP_TASK=false removes it."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from jqs.netguard import REFUSED_MESSAGE
from tests.acceptance.conftest import StartJqs
from tests.support.proc import JqsProcess

ADMIN_KEY = "test-admin-key-0123456789abcdefghijkl"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
MARKER = "payload-only-the-api-should-show-7d2e"


def _client(proc: JqsProcess) -> httpx.Client:
    return httpx.Client(base_url=proc.url, headers=AUTH, timeout=10)


def _submit(client: httpx.Client, queue: str, payload: dict[str, Any]) -> int:
    response = client.post("/jobs", json=payload, params={"queue": queue, "max_attempts": 3})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _settled(client: httpx.Client, job_id: int, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.05)


def test_http_jobs_cannot_reach_the_jqs_api_unless_allowed(dsn: str, start_jqs: StartJqs) -> None:
    # Three servers on one database, each serving its own queue.
    default = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY, JQS_QUEUES="plain")
    allowing = start_jqs(
        DATABASE_URL=dsn,
        JQS_ADMIN_KEY=ADMIN_KEY,
        JQS_QUEUES="opened",
        JQS_HTTP_ALLOW="127.0.0.1/32",
    )
    without = start_jqs(
        DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY, JQS_QUEUES="nohttp", JQS_HTTP_TASK="false"
    )
    with _client(default) as client:
        _submit(client, "parked", {"task": "noop", "note": MARKER})  # no one serves "parked"
        # The jobs even carry a key (as a job that knows one could): the address decides.
        refused = [
            _submit(client, "plain", {"task": "http", "url": url, "headers": AUTH})
            for url in (f"{default.url}/jobs", f"http://localhost:{default.port}/jobs")
        ]
        opened = _submit(
            client, "opened", {"task": "http", "url": f"{allowing.url}/jobs", "headers": AUTH}
        )
        removed = _submit(client, "nohttp", {"task": "http", "url": f"{without.url}/health"})
        for job_id in refused:
            job = _settled(client, job_id)
            assert job["status"] == "failed"
            assert job["attempts"] == 1
            assert job["result"]["error"] == REFUSED_MESSAGE
            assert MARKER not in json.dumps(job)
        # The same request, allowed, reaches the API: what the refusal above withheld.
        job = _settled(client, opened)
        assert job["status"] == "completed"
        assert MARKER in job["result"]["body"]
        job = _settled(client, removed)
        assert job["status"] == "failed"
        assert job["attempts"] == 1
        assert job["result"]["error"] == "no handler is registered for task 'http'"
    assert "http" not in without.wait_for("tasks_registered")[0]["tasks"]
    assert "http" in default.wait_for("tasks_registered")[0]["tasks"]
