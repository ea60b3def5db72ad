"""Workers in other languages, over the HTTP worker protocol, against a real `jqs serve`:
examples/node-worker (Node's built-in fetch) and examples/worker.sh (bash, curl, jq).

Each runs as its users would run it, with a key that has only the `worker` scope, against
a server that runs no workers of its own. They claim, heartbeat, complete, fail and retry,
stop a job cancelled while it runs, and have a completion refused once its lease expired.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import StartJqs
from tests.support.proc import REPO, JqsProcess, jqs_env
from tests.support.waiting import finished, job_when

ADMIN = "test-admin-key-0123456789abcdefghijkl"
LEASE_SECONDS = 3
WORKERS = {
    "node": ("node", REPO / "examples" / "node-worker" / "worker.mjs"),
    "bash": ("bash", REPO / "examples" / "worker.sh"),
}
# What each worker needs on the PATH; the test says which is missing rather than pass.
NEEDS = {"node": ["node"], "bash": ["bash", "curl", "jq"]}


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(params=sorted(WORKERS))
def worker_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    missing = [tool for tool in NEEDS[kind] if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the {kind} worker needs {', '.join(missing)} on the PATH")
    return kind


@pytest.fixture
def server(dsn: str, start_jqs: StartJqs) -> JqsProcess:
    return start_jqs(
        "serve",
        "--no-worker",
        DATABASE_URL=dsn,
        JQS_ADMIN_KEY=ADMIN,
        JQS_RESCUE_INTERVAL="0.3",
        JQS_RETRY_BACKOFF_BASE="0.1",
    )


@pytest.fixture
def client(server: JqsProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=_auth(ADMIN), timeout=30) as client:
        yield client


@pytest.fixture
def worker(
    worker_kind: str, server: JqsProcess, client: httpx.Client, tmp_path: Path
) -> Iterator[JqsProcess]:
    key = client.post("/keys", json={"name": "remote", "scopes": ["worker"]})
    assert key.status_code == 201, key.text
    command, program = WORKERS[worker_kind]
    env = jqs_env(
        JQS_URL=server.url,
        JQS_API_KEY=key.json()["secret"],
        JQS_LEASE_SECONDS=str(LEASE_SECONDS),
        JQS_CONCURRENCY="4",
        JQS_WORKER_ID=f"{worker_kind}-worker",
        TMPDIR=str(tmp_path),
    )
    proc = JqsProcess(str(program), env=env, cwd=tmp_path, command=command)
    proc.wait_for("worker_started")
    yield proc
    proc.kill()


def submit(client: httpx.Client, payload: dict[str, Any], **params: Any) -> int:
    answer = client.post("/jobs", json=payload, params=params)
    assert answer.status_code == 201, answer.text
    job_id: int = answer.json()["id"]
    return job_id


def test_a_worker_in_another_language_runs_jobs_over_http(
    worker: JqsProcess, client: httpx.Client, worker_kind: str
) -> None:
    # Claim and complete.
    echo = submit(client, {"task": "echo", "n": 1})
    done = job_when(client, echo, finished, timeout=60)
    assert (done["status"], done["result"]) == ("completed", {"echoed": {"task": "echo", "n": 1}})
    listed = {w["id"]: w for w in client.get("/workers").json()}
    assert f"{worker_kind}-worker" in listed, "a claim registers the worker"
    # Fail, retried after the server's backoff, then complete.
    flaky = submit(client, {"task": "fail", "times": 1}, max_attempts=3)
    done = job_when(client, flaky, finished, timeout=60)
    assert (done["status"], done["attempts"]) == ("completed", 2)
    assert done["result"] == {"succeeded_on": 2}
    assert [e["attempt"] for e in done["errors"]] == [1]
    # Fail on every attempt: failed after the last.
    doomed = submit(client, {"task": "fail"}, max_attempts=2)
    done = job_when(client, doomed, finished, timeout=60)
    assert (done["status"], done["attempts"], len(done["errors"])) == ("failed", 2, 2)
    # Heartbeats keep a job that runs longer than its lease.
    long = submit(client, {"task": "sleep", "seconds": 2 * LEASE_SECONDS})
    done = job_when(client, long, finished, timeout=90)
    assert (done["status"], done["attempts"], done["errors"]) == ("completed", 1, [])


def test_a_job_cancelled_while_it_runs_ends_cancelled(
    worker: JqsProcess, client: httpx.Client
) -> None:
    job_id = submit(client, {"task": "sleep", "seconds": 120})
    job_when(client, job_id, lambda job: job["status"] == "processing", timeout=60)
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 202
    done = job_when(client, job_id, finished, timeout=60)
    assert done["status"] == "cancelled"
    assert worker.wait_for("cancel_requested")[0]["job_id"] == job_id


def test_an_end_sent_after_the_lease_expired_is_refused_and_changes_nothing(
    worker: JqsProcess, client: httpx.Client
) -> None:
    # No heartbeat: the lease runs out, the server ends the job (no attempts left), and the
    # worker's late completion is refused.
    job_id = submit(
        client, {"task": "sleep", "seconds": 3 * LEASE_SECONDS, "heartbeat": False}, max_attempts=1
    )
    failed = job_when(client, job_id, finished, timeout=60)
    assert (failed["status"], failed["result"]["type"]) == ("failed", "LeaseExpired")
    [refused] = worker.wait_for("job_end_refused", timeout=60)
    assert (refused["job_id"], refused["status"]) == (job_id, 409)
    after = client.get(f"/jobs/{job_id}").json()
    assert (after["status"], after["result"], after["updated_at"]) == (
        "failed",
        failed["result"],
        failed["updated_at"],
    )


def test_sigterm_ends_a_waiting_claim_at_once(server: JqsProcess, client: httpx.Client) -> None:
    key = client.post("/keys", json={"name": "w", "scopes": ["worker"]}).json()["secret"]
    body = {"worker": {"id": "idle"}, "queues": ["default"], "wait": 30}
    with httpx.Client(base_url=server.url, headers=_auth(key), timeout=60) as worker_client:
        started = time.monotonic()
        answers: list[httpx.Response] = []
        waiting = threading.Thread(
            target=lambda: answers.append(worker_client.post("/v1/workers/claim", json=body))
        )
        waiting.start()
        time.sleep(1.0)
        server.signal(signal.SIGTERM)
        waiting.join(20)
        assert answers, "the claim did not end"
        assert (answers[0].status_code, answers[0].json()) == (200, [])
        assert time.monotonic() - started < 15
    assert server.wait(30) == 0
