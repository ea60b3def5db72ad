"""Signed webhooks on real `jqs serve` processes, to receivers on loopback: every delivery
arrives once its receiver is back, a process killed with -9 loses none, callbacks are
signed with their key's secret, rotation sends both signatures, and the SSRF policy holds.
Signatures are checked with the `standardwebhooks` library, as a receiver would."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from tests.acceptance.conftest import StartJqs
from tests.support.receiver import Received, Receiver

ADMIN = "test-admin-key-0123456789abcdefghijkl"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
# Many quick retries: a receiver that is down for a few seconds still gets everything.
FAST = {"JQS_WEBHOOK_SCHEDULE": ",".join(["0"] + ["0.5"] * 40), "JQS_HTTP_ALLOW": "127.0.0.1"}


def _until(check: Callable[[], Any], within: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {within}s (last: {value!r})")
        time.sleep(interval)


def _subscribe(client: httpx.Client, url: str, events: list[str], **more: Any) -> dict[str, Any]:
    answer = client.post("/webhooks", json={"url": url, "events": events, **more}, headers=AUTH)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    assert created["secret"].startswith("whsec_")
    return created


def _verified(secret: str, received: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Verifier(secret).verify(received.body, received.headers)
    return payload


def _submit(
    client: httpx.Client, n: int, headers: dict[str, str] = AUTH, **query: str
) -> list[int]:
    ids = []
    for i in range(n):
        answer = client.post(
            "/jobs", json={"task": "send_email", "n": i}, params=query, headers=headers
        )
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    return ids


def test_a_receiver_that_was_down_gets_every_delivery_once_back(
    dsn: str, start_jqs: StartJqs
) -> None:
    # Refusing connections first (not started), then 500 three times, then 429 with
    # Retry-After three times, then 200.
    def script(n: int) -> tuple[int, dict[str, str], float]:
        if n < 3:
            return 500, {}, 0.0
        if n < 6:
            return 429, {"Retry-After": "1"}, 0.0
        return 200, {}, 0.0

    receiver = Receiver(script)
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN, **FAST)
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        hook = _subscribe(client, receiver.url, ["job.completed"])
        ids = _submit(client, 5)

        def attempts() -> list[dict[str, Any]]:
            answer = client.get(f"/webhooks/{hook['id']}/deliveries", headers=AUTH)
            assert answer.status_code == 200, answer.text
            rows: list[dict[str, Any]] = answer.json()
            return rows

        # Every delivery was tried at least twice while nothing listened.
        _until(lambda: len(attempts()) == 5 and all(len(d["attempts"]) >= 2 for d in attempts()))
        refused = attempts()[0]["attempts"][0]
        assert refused["status_code"] is None
        assert refused["error"]
        assert attempts()[0]["state"] == "pending"
        assert attempts()[0]["next_attempt_at"]
        receiver.start()
        try:
            _until(lambda: {r.json["data"]["job"]["id"] for r in receiver.delivered()} == set(ids))
            _until(lambda: all(d["state"] == "delivered" for d in attempts()))
        finally:
            receiver.stop()
        by_job: dict[int, set[str]] = defaultdict(set)
        for received in receiver.all():
            event = _verified(hook["secret"], received)
            assert event["type"] == "job.completed"
            assert event["data"]["event"]["type"] == "job.completed"
            job = event["data"]["job"]
            assert job["status"] == "completed"
            assert job["result"] is not None
            by_job[job["id"]].add(received.headers["webhook-id"])
        # The same webhook-id on every attempt of a delivery.
        assert all(len(message_ids) == 1 for message_ids in by_job.values())
        codes = [a["status_code"] for d in attempts() for a in d["attempts"]]
        assert {500, 429, 200} <= set(codes)
        # After a 429, its Retry-After (1 s) was waited for, not the schedule's 0.5 s.
        by_message: dict[str, list[Received]] = defaultdict(list)
        for received in receiver.all():
            by_message[received.headers["webhook-id"]].append(received)
        gaps = [
            later.at - earlier.at
            for tries in by_message.values()
            for earlier, later in itertools.pairwise(tries)
            if earlier.status == 429
        ]
        assert gaps
        assert min(gaps) >= 0.9


def test_a_process_killed_during_delivery_loses_no_webhook(dsn: str, start_jqs: StartJqs) -> None:
    # The first request hangs past the moment the process is killed; the rest are answered.
    def script(n: int) -> tuple[int, dict[str, str], float]:
        return 200, {}, 5.0 if n == 0 else 0.0

    receiver = Receiver(script).start()
    env = {**FAST, "JQS_WEBHOOK_TIMEOUT": "2"}  # a claim's lease: 2 * 2 + 5 s
    try:
        first = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN, **env)
        with httpx.Client(base_url=first.url, timeout=10) as client:
            hook = _subscribe(client, receiver.url, ["job.completed"])
            [job_id] = _submit(client, 1)
            _until(lambda: receiver.all())
            first.kill()  # SIGKILL, mid-request
        second = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN, **env)
        delivered = _until(receiver.delivered, within=60)
        assert len(delivered) == 1
        event = _verified(hook["secret"], delivered[0])
        assert event["data"]["job"]["id"] == job_id
        # The attempt cut short and the one that arrived share their webhook-id.
        assert {r.headers["webhook-id"] for r in receiver.all()} == {
            delivered[0].headers["webhook-id"]
        }
        with httpx.Client(base_url=second.url, timeout=10) as client:
            _until(
                lambda: (
                    client.get(f"/webhooks/{hook['id']}/deliveries", headers=AUTH).json()[0][
                        "state"
                    ]
                    == "delivered"
                )
            )
    finally:
        receiver.stop()


def test_callbacks_are_signed_with_the_submitting_keys_secret_and_rotation_sends_both(
    dsn: str, start_jqs: StartJqs
) -> None:
    receiver = Receiver().start()
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN, **FAST)
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            created = client.post(
                "/keys", json={"name": "cb", "scopes": ["jobs:submit"]}, headers=AUTH
            ).json()
            old = created["webhook_secret"]
            assert old.startswith("whsec_")
            key = {"Authorization": f"Bearer {created['secret']}"}
            # The bootstrap key has no webhook secret: a callback would go unsigned.
            refused = client.post(
                "/jobs",
                json={"task": "send_email"},
                params={"callback_url": receiver.url},
                headers=AUTH,
            )
            assert refused.status_code == 422, refused.text
            assert "webhook secret" in refused.json()["detail"]
            [first] = _submit(client, 1, key, callback_url=receiver.url)
            got = _until(receiver.delivered)
            assert len(got) == 1
            event = _verified(old, got[0])
            assert event["type"] == "job.completed"
            assert event["data"]["job"]["id"] == first
            assert len(got[0].headers["webhook-signature"].split()) == 1
            # Only the final event comes to a callback: no enqueued or started.
            time.sleep(0.5)
            assert len(receiver.all()) == 1

            rotated = client.post(f"/keys/{created['id']}/webhook-secret", headers=AUTH)
            assert rotated.status_code == 200, rotated.text
            new = rotated.json()["webhook_secret"]
            assert new != old
            assert rotated.json()["previous_secret_until"]
            # A batch item names its callback too.
            batch = client.post(
                "/jobs/batch",
                json={
                    "jobs": [
                        {
                            "payload": {"task": "boom"},
                            "callback_url": receiver.url,
                            "max_attempts": 1,
                        }
                    ]
                },
                headers=key,
            )
            assert batch.status_code == 201, batch.text
            second = _until(lambda: receiver.delivered()[1:])[0]
            assert len(second.headers["webhook-signature"].split()) == 2
            for secret in (old, new):
                event = _verified(secret, second)
            assert event["type"] == "job.failed"
            assert event["data"]["job"]["id"] == batch.json()[0]["id"]
    finally:
        receiver.stop()


def test_a_subscription_rotated_signs_with_both_secrets(dsn: str, start_jqs: StartJqs) -> None:
    receiver = Receiver().start()
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN, **FAST)
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            hook = _subscribe(client, receiver.url, ["job.enqueued"], queues=["default"])
            rotated = client.post(f"/webhooks/{hook['id']}/rotate", headers=AUTH)
            assert rotated.status_code == 200, rotated.text
            assert rotated.json()["secret"] != hook["secret"]
            _submit(client, 1)
            [got] = _until(receiver.delivered)
            assert len(got.headers["webhook-signature"].split()) == 2
            _verified(hook["secret"], got)
            _verified(rotated.json()["secret"], got)
            with pytest.raises(WebhookVerificationError):
                _verified("whsec_" + "A" * 43 + "=", got)
            listed = client.get("/webhooks", headers=AUTH).json()
            assert [h["id"] for h in listed] == [hook["id"]]
            assert "secret" not in listed[0]
            assert client.delete(f"/webhooks/{hook['id']}", headers=AUTH).status_code == 204
            assert client.delete(f"/webhooks/{hook['id']}", headers=AUTH).status_code == 404
    finally:
        receiver.stop()


def test_a_410_disables_the_subscription(dsn: str, start_jqs: StartJqs) -> None:
    receiver = Receiver(lambda n: (410, {}, 0.0)).start()
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN, **FAST)
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            hook = _subscribe(client, receiver.url, ["job.completed"])
            _submit(client, 1)
            _until(
                lambda: client.get("/webhooks", headers=AUTH).json()[0]["disabled_at"] is not None
            )
            _submit(client, 2)
            time.sleep(1.5)
            assert len(receiver.all()) == 1
            [delivery] = client.get(f"/webhooks/{hook['id']}/deliveries", headers=AUTH).json()
            assert delivery["state"] == "failed"
            assert delivery["attempts"][0]["status_code"] == 410
    finally:
        receiver.stop()


def test_webhook_urls_outside_the_ssrf_policy_are_refused(dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN)  # loopback not allowed
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        answer = client.post(
            "/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "events": ["job.completed"]},
            headers=AUTH,
        )
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert "JQS_HTTP_ALLOW" in answer.json()["detail"]
        key = client.post(
            "/keys", json={"name": "cb", "scopes": ["jobs:submit"]}, headers=AUTH
        ).json()
        refused = client.post(
            "/jobs",
            json={"task": "send_email"},
            params={"callback_url": "http://169.254.169.254/latest"},
            headers={"Authorization": f"Bearer {key['secret']}"},
        )
        assert refused.status_code == 422, refused.text
        assert "JQS_HTTP_ALLOW" in refused.json()["detail"]
        # Not admin: no webhooks.
        listed = client.get("/webhooks", headers={"Authorization": f"Bearer {key['secret']}"})
        assert listed.status_code == 403
