"""Queue limits at claim time: pause, concurrency caps and the token bucket, on given times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jqs.store.limits import LimitedQueue, plan_claim, spend_tokens, tokens_at

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def queue(name: str, **fields: object) -> LimitedQueue:
    values: dict[str, object] = {
        "concurrency_limit": None,
        "rate_limit": None,
        "paused": False,
        "tokens": 0.0,
        "refilled_at": T0,
    }
    values.update(fields)
    return LimitedQueue(name=name, **values)  # type: ignore[arg-type]


def test_the_bucket_refills_at_the_rate_and_holds_a_tenth_of_a_second() -> None:
    q = queue("q", rate_limit=100.0)
    assert tokens_at(q, T0) == 0
    assert tokens_at(q, T0 + timedelta(milliseconds=50)) == pytest.approx(5)
    assert tokens_at(q, T0 + timedelta(seconds=60)) == 10, "no burst after a long idle spell"
    slow = queue("slow", rate_limit=0.5)
    assert tokens_at(slow, T0 + timedelta(hours=1)) == 1, "at least one token fits"
    assert tokens_at(queue("free"), T0) == float("inf")
    assert tokens_at(q, T0 - timedelta(seconds=1)) == 0, "a clock that went back adds none"


def test_plan_skips_paused_and_empty_buckets_and_caps_the_rest() -> None:
    limited = {
        "paused": queue("paused", paused=True),
        "empty": queue("empty", rate_limit=10.0),
        "three": queue("three", rate_limit=100.0, tokens=3.7),
        "capped": queue("capped", concurrency_limit=2),
    }
    plan = plan_claim(["plain", "paused", "empty", "three", "capped"], limited, 50, T0)
    assert plan.names == ["plain", "three", "capped"]
    assert plan.caps == [50, 3, 50]
    assert plan.max_running == [None, None, 2]
    assert plan.rate_wait == pytest.approx(0.1), "the empty bucket's next token"


def test_spending_notes_when_the_next_token_comes() -> None:
    limited = {"q": queue("q", rate_limit=100.0, tokens=2.5), "c": queue("c", concurrency_limit=1)}
    plan = plan_claim(["q", "c"], limited, 10, T0)
    assert plan.caps == [2, 10]
    spent = spend_tokens(limited, {"q": 2}, plan, T0)
    assert [(s.name, s.tokens, s.at) for s in spent] == [("q", pytest.approx(0.5), T0)]
    assert plan.rate_wait == pytest.approx(0.005), "half a token short at 100 a second"
