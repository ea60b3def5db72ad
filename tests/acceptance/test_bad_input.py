"""Bad input on a real `jqs serve` over real sockets: always a clear 4xx, never a 503 or a
500, and a client that goes away mid-body is one log line, not a traceback."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import StartJqs

ADMIN_KEY = "test-admin-key-0123456789abcdefghijkl"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    for fragment in fragments:
        assert fragment in body["detail"], body["detail"]
    return body


@pytest.fixture
def client(dsn: str, start_jqs: StartJqs) -> Any:
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY)
    with httpx.Client(base_url=proc.url, timeout=10, headers=AUTH) as http:
        http.proc = proc  # type: ignore[attr-defined]
        yield http


def test_input_the_database_would_refuse_is_422(client: httpx.Client) -> None:
    job = {"task": "noop"}
    # NUL: PostgreSQL's text and jsonb cannot hold it.
    _problem(client.get("/jobs?task=%00"), 422, "query.task", "NUL")
    _problem(client.get("/jobs?task=a%00b&status=queued"), 422, "NUL")
    _problem(client.post("/jobs", json={"task": "x", "a": "\u0000"}), 422, "NUL")
    _problem(client.post("/jobs", json={"task": "x", "a\u0000": 1}), 422, "NUL")
    _problem(client.post("/jobs?queue=a%00", json=job), 422, "query.queue")
    batch = {"jobs": [{"payload": {"a": "\u0000"}}]}
    _problem(client.post("/jobs/batch", json=batch), 422, "jobs[0].payload", "NUL")
    batch = {"jobs": [{"payload": {}, "queue": "a\u0000"}]}
    _problem(client.post("/jobs/batch", json=batch), 422, "jobs[0].queue")
    # A task name too long for the index of finished jobs: its end could never be written.
    _problem(client.post("/jobs", json={"task": "t" * 10_000}), 422, "payload.task")
    batch = {"jobs": [{"payload": {"task": {"deep": "t" * 10_000}}}]}
    _problem(client.post("/jobs/batch", json=batch), 422, "jobs[0].payload.task")
    # Numbers finer than PostgreSQL's numeric holds.
    tiny = b'{"task": "x", "a": 1e-20000}'
    headers = {"Content-Type": "application/json"}
    _problem(client.post("/jobs", content=tiny, headers=headers), 422, "decimal point")
    tiny_batch = b'{"jobs": [{"payload": {"a": 0.5e-16383}}]}'
    _problem(client.post("/jobs/batch", content=tiny_batch, headers=headers), 422, "16383")
    # Times that an offset pushes out of range.
    for when in ("0001-01-01T00:00:00%2B01:00", "9999-12-31T23:59:59-01:00"):
        _problem(client.post(f"/jobs?run_at={when}", json=job), 422, "query.run_at", "offset")
    batch = {"jobs": [{"payload": {}, "run_at": "0001-01-01T00:00:00+01:00"}]}
    _problem(client.post("/jobs/batch", json=batch), 422, "jobs[0].run_at")
    # Numbers out of range in any option.
    for option in ("priority", "max_attempts", "timeout", "delay"):
        _problem(client.post(f"/jobs?{option}={10**30}", json=job), 422, f"query.{option}")
        batch = {"jobs": [{"payload": {}, option: 10**30}]}
        _problem(client.post("/jobs/batch", json=batch), 422, f"jobs[0].{option}")
    _problem(client.get(f"/jobs/{10**30}"), 422)
    _problem(client.get(f"/jobs?page={10**30}"), 422)
    # The edges themselves are fine.
    edge = client.post("/jobs?run_at=9999-12-31T23:59:59Z&priority=32767", json=job)
    assert edge.status_code == 201, edge.text
    assert edge.json()["run_at"] == "9999-12-31T23:59:59+00:00"
    assert client.get("/jobs", params={"task": "noop"}).status_code == 200


def test_run_at_is_written_back_in_rfc_3339_with_an_offset(client: httpx.Client) -> None:
    created = client.post("/jobs?run_at=2031-01-02T08:04:05%2B05:00", json={"task": "noop"})
    assert created.json()["run_at"] == "2031-01-02T03:04:05+00:00"
    job_id = created.json()["id"]
    assert client.get(f"/jobs/{job_id}").json()["run_at"] == "2031-01-02T03:04:05+00:00"
    batch = {"jobs": [{"payload": {}, "run_at": "2031-01-02T03:04:05-02:30"}]}
    assert client.post("/jobs/batch", json=batch).json()[0]["run_at"] == (
        "2031-01-02T05:34:05+00:00"
    )
    listed = client.get("/jobs", params={"limit": 100}).json()
    assert all(job["run_at"].endswith("+00:00") for job in listed)


def test_unknown_query_parameters_on_submit_are_422(client: httpx.Client) -> None:
    _problem(client.post("/jobs?prority=5", json={"task": "noop"}), 422, "did you mean 'priority'")
    batch = {"jobs": [{"payload": {}}]}
    _problem(client.post("/jobs/batch?priority=5", json=batch), 422, "query.priority")
    assert client.get("/jobs").json() == [], "nothing was created"


def test_queue_patch_is_strict(client: httpx.Client) -> None:
    for body, fragment in [
        ({"paused": "yes"}, "paused"),
        ({"concurrency_limit": True}, "concurrency_limit"),
        ({"concurrency_limit": 2.5}, "whole number"),
        ({"rate_limit": 1e-300}, "0.001"),
        ({"max_queued": 0}, "max_queued"),
    ]:
        _problem(client.patch("/queues/mail", json=body), 422, fragment)
    bad_name = client.patch("/queues/bad%20name", json={"paused": True})
    _problem(bad_name, 422, "path.name: a queue name is 1-100 characters")
    assert all(q["name"] != "mail" for q in client.get("/queues").json()), "none created"
    ok = client.patch("/queues/mail", json={"concurrency_limit": 3.0, "rate_limit": 0.5})
    assert ok.json()["concurrency_limit"] == 3


def _cut_mid_body(port: int, method: str, path: str, length: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: jqs\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"task": "')  # 10 bytes of those promised


def test_a_client_that_disconnects_mid_body_is_one_line_and_no_500(client: httpx.Client) -> None:
    proc = client.proc  # type: ignore[attr-defined]
    routes = [("POST", "/jobs"), ("POST", "/jobs/batch"), ("PATCH", "/queues/mail")]
    for method, path in routes:
        # Within each route's limit (a queue's settings: 16 KiB), or it answers 413 at once.
        _cut_mid_body(proc.port, method, path, 10_000 if method == "PATCH" else 100_000)
    proc.wait_for("client_disconnected", count=len(routes), timeout=10)
    time.sleep(0.3)  # the access lines follow their disconnect lines
    assert client.get("/health").status_code == 200
    cut = [line for line in proc.events("http_request") if line["status_code"] == 499]
    assert sorted((line["method"], line["path"]) for line in cut) == sorted(routes)
    assert not [line for line in proc.events("http_request") if line["status_code"] >= 500]
    assert not proc.events("unhandled_error")
    assert not any("Traceback" in line for line in proc.raw)
    assert "Traceback" not in "".join(proc.raw)
