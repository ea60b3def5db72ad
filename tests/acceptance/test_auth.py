"""API keys on a real `jqs serve`: who may do what, the start-up rules, revocation across
processes, the Origin check and `jqs keys`, over real sockets."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance.conftest import StartJqs
from tests.support.proc import jqs_env, run_jqs

ADMIN = "test-admin-key-0123456789abcdefghijkl"


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _create_key(client: httpx.Client, **spec: Any) -> dict[str, Any]:
    response = client.post("/keys", json=spec, headers=_auth(ADMIN))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["secret"].startswith("jqs_")
    return created


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def test_loopback_without_any_key_serves_openly_and_says_so(dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn)
    [line] = proc.wait_for("auth_open_on_loopback")
    assert line["host"] == "127.0.0.1"
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        assert client.post("/jobs", json={"task": "echo"}).status_code == 201
        assert client.get("/jobs").status_code == 200


def test_a_public_address_without_a_key_refuses_to_start(tmp_path: Path, dsn: str) -> None:
    env = jqs_env(DATABASE_URL=dsn, JQS_HOST="0.0.0.0", PORT="0")
    done = run_jqs("serve", "--no-worker", env=env, cwd=tmp_path)
    assert done.returncode == 2
    [message] = done.stderr.strip().splitlines()
    assert "refusing to serve on 0.0.0.0 without authentication" in message
    assert "JQS_ADMIN_KEY" in message
    assert "JQS_AUTH=off" in message


def test_auth_off_is_obeyed_and_warned_about(dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN, JQS_AUTH="off")
    proc.wait_for("auth_disabled")
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        assert client.post("/jobs", json={"task": "echo"}).status_code == 201


def test_keys_scopes_and_queue_limits(dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN, JQS_QUEUES="emails,billing")
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        missing = _problem(client.post("/jobs", json={"task": "echo"}), 401)
        assert "Authorization: Bearer" in missing["detail"]
        unknown = client.get("/jobs", headers=_auth("jqs_nope_" + "x" * 43))
        assert _problem(unknown, 401)["detail"] == "this API key is unknown, revoked or expired"
        assert unknown.headers["www-authenticate"] == "Bearer"
        assert client.get("/health").status_code == 200, "probes need no key"
        assert client.get("/openapi.json").status_code == 200

        billing = client.post(
            "/jobs?queue=billing", json={"task": "echo", "n": 1}, headers=_auth(ADMIN)
        ).json()
        emails = _create_key(
            client, name="emails", scopes=["jobs:submit", "jobs:read"], queues=["emails"]
        )
        key = _auth(emails["secret"])
        mine = client.post("/jobs?queue=emails", json={"task": "echo"}, headers=key)
        assert mine.status_code == 201
        assert mine.json()["created_by"] == emails["id"]
        assert (
            client.get(f"/jobs/{mine.json()['id']}", headers=key).json()["created_by"]
            == (emails["id"])
        )
        other = _problem(
            client.post("/jobs?queue=billing", json={"task": "echo"}, headers=key), 403
        )
        assert "may not use queue 'billing'" in other["detail"]
        batch = client.post(
            "/jobs/batch",
            json={"jobs": [{"payload": {"task": "echo"}, "queue": "billing"}]},
            headers=key,
        )
        _problem(batch, 403)
        _problem(client.get(f"/jobs/{billing['id']}", headers=key), 404)
        listed = client.get("/jobs?limit=100", headers=key).json()
        assert {job["queue"] for job in listed} == {"emails"}
        assert [q["name"] for q in client.get("/queues", headers=key).json()] == ["emails"]
        cancel = _problem(client.post(f"/jobs/{mine.json()['id']}/cancel", headers=key), 403)
        assert cancel["missing_scope"] == "jobs:manage"
        _problem(client.patch("/queues/emails", json={"paused": True}, headers=key), 403)
        _problem(client.get("/keys", headers=key), 403)

        manager = _create_key(client, name="ops", scopes=["jobs:manage"], queues=["emails"])
        manage = _auth(manager["secret"])
        _problem(client.post(f"/jobs/{billing['id']}/cancel", headers=manage), 404)
        assert client.post(f"/jobs/{billing['id']}/cancel", headers=_auth(ADMIN)).status_code in (
            200,
            202,
            409,
        )
    proc.kill()
    access = [line for line in proc.events("http_request") if line["path"].startswith("/jobs")]
    assert any(line.get("key_id") == emails["id"] for line in access)
    assert not any(emails["secret"] in json.dumps(line) for line in proc.events("http_request"))


def test_idempotency_keys_belong_to_their_api_key(dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN)
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        one = _auth(_create_key(client, name="one", scopes=["jobs:submit"])["secret"])
        two = _auth(_create_key(client, name="two", scopes=["jobs:submit"])["secret"])
        first = client.post(
            "/jobs", json={"task": "echo", "a": 1}, headers={**one, "Idempotency-Key": "order-7"}
        )
        assert first.status_code == 201
        again = client.post(
            "/jobs", json={"task": "echo", "a": 1}, headers={**one, "Idempotency-Key": "order-7"}
        )
        assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
        theirs = client.post(
            "/jobs", json={"task": "echo", "b": 2}, headers={**two, "Idempotency-Key": "order-7"}
        )
        assert theirs.status_code == 201, "another key's Idempotency-Key is not visible"
        assert theirs.json()["id"] != first.json()["id"]


def test_cross_site_requests_cannot_change_state(dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_CORS_ORIGINS="https://app.example.com")
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        job = client.post("/jobs", json={"task": "sleep", "seconds": 30}).json()
        # What a form on another site posts: no key needed on an open loopback server,
        # which is exactly why the Origin is checked.
        forged = client.post(
            f"/jobs/{job['id']}/cancel",
            headers={
                "Origin": "https://evil.example",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert "cross-site" in _problem(forged, 403)["detail"]
        _problem(client.post("/jobs", json={"task": "echo"}, headers={"Origin": "null"}), 403)
        assert client.get(f"/jobs/{job['id']}").json()["cancel_requested"] is False
        assert client.get("/jobs", headers={"Origin": "https://evil.example"}).status_code == 200
        own = client.post("/jobs", json={"task": "echo"}, headers={"Origin": proc.url})
        assert own.status_code == 201
        proxied = client.post(
            "/jobs",
            json={"task": "echo"},
            headers={"Origin": "https://jqs.example.com", "X-Forwarded-Host": "jqs.example.com"},
        )
        assert proxied.status_code == 201, "same origin behind a TLS proxy"
        listed = client.post(
            "/jobs", json={"task": "echo"}, headers={"Origin": "https://app.example.com"}
        )
        assert listed.status_code == 201
        assert listed.headers["access-control-allow-origin"] == "https://app.example.com"


def test_a_keys_rate_limit_answers_429_with_retry_after(dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN)
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        slow = _auth(
            _create_key(client, name="slow", scopes=["jobs:read"], rate_limit=0.2)["secret"]
        )
        assert client.get("/jobs", headers=slow).status_code == 200
        limited = client.get("/jobs", headers=slow)
        _problem(limited, 429)
        assert 1 <= int(limited.headers["retry-after"]) <= 5
        assert client.get("/jobs", headers=_auth(ADMIN)).status_code == 200, "other keys go on"


def test_revocation_reaches_another_process_within_5_seconds(dsn: str, start_jqs: StartJqs) -> None:
    first = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN)
    second = start_jqs("serve", "--no-worker", DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN)
    with (
        httpx.Client(base_url=first.url, timeout=10) as one,
        httpx.Client(base_url=second.url, timeout=10) as two,
    ):
        created = _create_key(one, name="roaming", scopes=["jobs:read"])
        key = _auth(created["secret"])
        assert one.get("/jobs", headers=key).status_code == 200, "at once where it was made"
        began = time.monotonic()
        while two.get("/jobs", headers=key).status_code != 200:
            assert time.monotonic() - began < 5, "a new key reaches the other process"
            time.sleep(0.1)
        revoked = one.delete(f"/keys/{created['id']}", headers=_auth(ADMIN))
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        assert one.get("/jobs", headers=key).status_code == 401, "at once where it was revoked"
        began = time.monotonic()
        while two.get("/jobs", headers=key).status_code != 401:
            assert time.monotonic() - began < 5, "revocation reaches the other process"
            time.sleep(0.1)
        listed = {k["id"]: k for k in two.get("/keys", headers=_auth(ADMIN)).json()}
        assert listed[created["id"]]["revoked_at"] is not None
        assert "secret" not in listed[created["id"]]


def test_jqs_keys_on_the_database_and_over_http(
    tmp_path: Path, dsn: str, start_jqs: StartJqs
) -> None:
    env = jqs_env(DATABASE_URL=dsn)
    made = run_jqs(
        "keys", "create", "--name", "ci", "--scopes", "jobs:submit,jobs:read,admin",
        "--queues", "a,b", "--json", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["queues"] == ["a", "b"]
    assert key["created_by"] == "cli"
    assert key["webhook_secret"].startswith("whsec_")
    rotated = run_jqs("keys", "rotate-webhook-secret", key["id"], env=env, cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.splitlines()[1].startswith("whsec_")
    assert rotated.stdout.splitlines()[1] != key["webhook_secret"]
    bad = run_jqs("keys", "create", "--name", "x", "--scopes", "jobs:all", env=env, cwd=tmp_path)
    assert bad.returncode == 1
    assert "unknown scope 'jobs:all'" in bad.stderr

    # The first key exists, so even a loopback server now needs one.
    proc = start_jqs(DATABASE_URL=dsn)
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        _problem(client.get("/jobs"), 401)
        assert (
            client.post(
                "/jobs?queue=a", json={"task": "echo"}, headers=_auth(key["secret"])
            ).status_code
            == 201
        )

    client_env = jqs_env(JQS_URL=proc.url, JQS_API_KEY=key["secret"])
    over_http = run_jqs(
        "keys", "create", "--name", "reader", "--scopes", "jobs:read", "--expires", "1h",
        "--json", env=client_env, cwd=tmp_path,
    )  # fmt: skip
    assert over_http.returncode == 0, over_http.stderr
    reader = json.loads(over_http.stdout)
    assert reader["created_by"] == key["id"]
    assert reader["webhook_secret"].startswith("whsec_")
    rotated = run_jqs("keys", "rotate-webhook-secret", reader["id"], env=client_env, cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert "The old one signs as well until" in rotated.stdout
    assert reader["expires_at"] is not None
    listed = run_jqs("keys", "list", "--json", env=client_env, cwd=tmp_path)
    assert {k["name"] for k in json.loads(listed.stdout)} == {"ci", "reader"}
    table = run_jqs("keys", "list", env=env, cwd=tmp_path)
    assert "reader" in table.stdout
    assert reader["secret"] not in table.stdout
    revoked = run_jqs("keys", "revoke", reader["id"], env=env, cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    gone = run_jqs("keys", "revoke", "key_000000000000", env=env, cwd=tmp_path)
    assert gone.returncode == 1
    assert "no API key has the id" in gone.stderr
    no_key = run_jqs("keys", "list", env=jqs_env(JQS_URL=proc.url), cwd=tmp_path)
    assert no_key.returncode == 1
    assert "JQS_API_KEY" in no_key.stderr
