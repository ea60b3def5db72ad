"""Standard Webhooks signatures, checked by the `standardwebhooks` library as a receiver
would check them; the retry schedule and Retry-After."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from jqs.webhooks import signing
from jqs.webhooks.schedule import DEFAULT_SCHEDULE, RetrySchedule, parse_retry_after

BODY = b'{"type":"job.completed","timestamp":"2026-12-03T10:00:00+00:00","data":{}}'


def test_a_new_secret_is_whsec_and_32_random_bytes() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert signing.new_secret() != secret


def test_the_library_verifies_what_is_signed() -> None:
    secret = signing.new_secret()
    now = int(time.time())
    headers = signing.headers([secret], "msg_7", now, BODY)
    assert headers["webhook-id"] == "msg_7"
    assert headers["webhook-timestamp"] == str(now)
    assert headers["webhook-signature"].startswith("v1,")
    assert Verifier(secret).verify(BODY, headers)["type"] == "job.completed"
    # The library's own signature of the same message is ours.
    assert (
        Verifier(secret).sign("msg_7", datetime.fromtimestamp(now, UTC), BODY.decode())
        == (headers["webhook-signature"])
    )


def test_a_changed_body_id_or_other_secret_fails() -> None:
    secret, other = signing.new_secret(), signing.new_secret()
    headers = signing.headers([secret], "msg_1", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(BODY.replace(b"completed", b"failed"), headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(BODY, {**headers, "webhook-id": "msg_2"})
    with pytest.raises(WebhookVerificationError):
        Verifier(other).verify(BODY, headers)


def test_during_rotation_both_secrets_sign() -> None:
    new, old = signing.new_secret(), signing.new_secret()
    headers = signing.headers([new, old], "msg_3", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        Verifier(secret).verify(BODY, headers)


def test_the_default_schedule_is_the_specs_and_lasts_about_a_day() -> None:
    schedule = RetrySchedule.parse(DEFAULT_SCHEDULE)
    assert schedule.delays == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert schedule.attempts == 8
    assert 24 * 3600 <= sum(schedule.delays) <= 30 * 3600


def test_each_failure_waits_the_next_delay_then_it_gives_up() -> None:
    schedule = RetrySchedule.parse("0,5,300")
    assert schedule.retry_in(1) == 5
    assert schedule.retry_in(2) == 300
    assert schedule.retry_in(3) is None  # three attempts made: done


def test_retry_after_replaces_the_delay_within_a_day() -> None:
    schedule = RetrySchedule.parse("0,5,300")
    assert schedule.retry_in(1, retry_after=42) == 42
    assert schedule.retry_in(1, retry_after=10**9) == 86_400
    assert schedule.retry_in(3, retry_after=1) is None


@pytest.mark.parametrize("text", ["", "a,b", "-1", "0,100000"])
def test_a_bad_schedule_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"seconds|delays"):
        RetrySchedule.parse(text)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    later = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, now) == 30
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
