"""API keys' logic without I/O: scopes, limits, the ring, rate limits, Origin, start-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jqs.api.origin import OriginCheck
from jqs.auth.issue import KeySpec, issue_key
from jqs.auth.keyring import KeyRing
from jqs.auth.principal import Principal
from jqs.auth.ratelimit import RateLimiter, retry_after
from jqs.auth.scopes import ALL_SCOPES, Scope, parse_scopes
from jqs.auth.secrets import new_key_id, new_secret, secret_hash
from jqs.auth.startup import AuthMode, auth_mode, is_loopback
from jqs.errors import ConfigError
from jqs.models import ApiKey
from jqs.testing import ManualClock, MemoryStore

ADMIN = "a" * 32


def _bearer(secret: str) -> bytes:
    return f"Bearer {secret}".encode()


def _key(**fields: object) -> ApiKey:
    values: dict[str, object] = {
        "id": "key_0123456789ab",
        "name": "k",
        "scopes": ["jobs:read"],
        "queues": None,
        "tasks": None,
        "rate_limit": None,
        "created_at": datetime(2030, 1, 1, tzinfo=UTC),
        "created_by": None,
        "expires_at": None,
        "revoked_at": None,
    }
    values.update(fields)
    return ApiKey(**values)  # type: ignore[arg-type]


def test_secrets_are_random_carry_their_key_id_and_hash_stably() -> None:
    key_id = new_key_id()
    one, two = new_secret(key_id), new_secret(key_id)
    assert one != two
    assert one.startswith(f"jqs_{key_id.removeprefix('key_')}_")
    assert len(one.split("_", 2)[2]) >= 43, "256 random bits"
    assert secret_hash(one) == secret_hash(one) != secret_hash(two)


def test_scopes_parse_and_name_what_is_unknown() -> None:
    assert parse_scopes("jobs:read, jobs:submit") == {Scope.JOBS_READ, Scope.JOBS_SUBMIT}
    with pytest.raises(ValueError, match="unknown scope 'jobs:all'"):
        parse_scopes("jobs:all")
    with pytest.raises(ValueError, match="at least one"):
        parse_scopes(" , ")


def test_a_principal_checks_scopes_queues_and_tasks() -> None:
    limited = Principal.of(_key(queues=["emails"], tasks=["send"]))
    assert limited.has(Scope.JOBS_READ)
    assert not limited.has(Scope.JOBS_MANAGE)
    assert limited.restricted
    assert limited.may_touch("emails", "send")
    assert not limited.may_touch("billing", "send")
    assert not limited.may_touch("emails", "charge")
    assert not limited.may_use_task(None)
    admin = Principal.of(_key(scopes=["admin"]))
    assert admin.scopes == ALL_SCOPES, "admin can mint any key, so it holds every scope"
    assert not admin.restricted


async def test_the_ring_knows_usable_keys_and_forgets_revoked_ones() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    ring = KeyRing(store, admin_key=ADMIN, interval=2.0, clock=clock)
    assert not ring.empty
    admin = ring.authenticate(_bearer(ADMIN))
    assert admin is not None
    assert admin.scopes == ALL_SCOPES
    issued = await issue_key(
        store,
        KeySpec(
            name="x",
            scopes=frozenset({Scope.JOBS_READ}),
            expires_at=clock.now() + timedelta(seconds=10),
        ),
        created_by=None,
    )
    assert ring.authenticate(_bearer(issued.secret)) is None, "not read yet"
    await ring.start()
    await clock.advance(2.0)
    found = ring.authenticate(_bearer(issued.secret))
    assert found is not None
    assert found.id == issued.key.id
    assert ring.authenticate(_bearer(issued.secret + "x")) is None
    assert ring.authenticate(f"bearer  {issued.secret}".encode()) is not None
    assert ring.authenticate(f"Basic {issued.secret}".encode()) is None
    await clock.advance(10.0)
    assert ring.authenticate(_bearer(issued.secret)) is None, "expired between two reads"
    await store.key_revoke(issued.key.id)
    await clock.advance(2.0)
    assert ring.authenticate(_bearer(issued.secret)) is None
    await ring.stop()
    assert KeyRing(store).empty


def test_rate_limits_allow_a_burst_then_say_how_long_to_wait() -> None:
    now = [0.0]
    limiter = RateLimiter(lambda: now[0])
    assert [limiter.wait("k", 2.0) for _ in range(2)] == [0.0, 0.0]
    assert limiter.wait("k", 2.0) == pytest.approx(0.5)
    assert limiter.wait("other", 2.0) == 0.0, "each key has its own bucket"
    now[0] += 0.5
    assert limiter.wait("k", 2.0) == 0.0
    assert retry_after(0.01) == "1"
    assert retry_after(2.2) == "3"


@pytest.mark.parametrize(
    ("origin", "hosts", "allowed"),
    [
        ("http://127.0.0.1:8080", ["127.0.0.1:8080"], True),
        ("http://127.0.0.1:9999", ["127.0.0.1:8080"], False),
        ("https://jqs.example.com", ["jqs.example.com"], True),
        ("https://jqs.example.com", ["127.0.0.1:8080", "jqs.example.com"], True),
        ("https://evil.example", ["jqs.example.com"], False),
        ("https://jqs.example.com.evil.example", ["jqs.example.com"], False),
        ("null", ["jqs.example.com"], False),
        ("file://", ["jqs.example.com"], False),
        ("https://app.example.com", ["jqs.example.com"], True),
        ("HTTPS://APP.EXAMPLE.COM", ["jqs.example.com"], True),
        ("http://[::1]:8080", ["[::1]:8080"], True),
        ("http://x:notaport", ["x"], False),
    ],
)
def test_the_origin_check(origin: str, hosts: list[str], allowed: bool) -> None:
    assert OriginCheck(["https://app.example.com/"]).permits(origin, hosts) is allowed


def test_start_up_rules() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.5.5.5")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("::")
    assert not is_loopback("example.com")
    assert auth_mode(host="127.0.0.1", auth="auto", have_keys=False) is AuthMode.OPEN_WHILE_NO_KEY
    assert auth_mode(host="0.0.0.0", auth="auto", have_keys=True) is AuthMode.REQUIRED
    assert auth_mode(host="0.0.0.0", auth="off", have_keys=False) is AuthMode.OFF
    with pytest.raises(ConfigError, match=r"refusing to serve on 0\.0\.0\.0"):
        auth_mode(host="0.0.0.0", auth="auto", have_keys=False)
