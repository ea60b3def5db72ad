"""The `http` task against real internal services on loopback: refused, whatever the spelling,
unless JQS_HTTP_ALLOW opens them; every redirect hop checked; failed jobs are not retried."""

from __future__ import annotations

import json
from collections.abc import Iterator
from ipaddress import ip_address
from typing import Any

import httpx
import pytest

from jqs.netguard import (
    REFUSED_MESSAGE,
    DestinationPolicy,
    DestinationRefused,
    guarded_client,
    system_resolver,
)
from jqs.netguard.policy import IPAddress
from jqs.store import PostgresStore
from jqs.tasks.control import FailNow
from jqs.tasks.http import http_task
from jqs.tasks.loader import HttpTaskSettings, build_registry
from jqs.worker import PoolSettings, WorkerPool
from tests.support.http import api_client
from tests.support.local_http import (
    SECRET,
    TLS_NAME,
    Hits,
    serve,
    serve_loopback,
    trusting_test_ca,
)
from tests.support.waiting import eventually

SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f.1",
    "0177.0.0.1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "localhost",
]
# The unspecified addresses reach local listeners on Linux too.
UNSPECIFIED = ["0.0.0.0", "[::]"]
LOOPBACK_ALLOWED = "127.0.0.0/8,::1/128"


@pytest.fixture(scope="module")
def internal() -> Iterator[tuple[int, Hits]]:
    with serve_loopback() as server:
        yield server


def _fn(allow: str = "") -> Any:
    return http_task(default_timeout=5, max_body=1000, policy=DestinationPolicy.parse(allow)).fn


@pytest.mark.parametrize(
    "spelling",
    ["127.0.0.1", "127.1", "2130706433", "0x7f.1", "0177.0.0.1", "0x7f000001", "::ffff:127.0.0.1"],
)
async def test_every_spelling_of_loopback_resolves_to_a_refused_address(spelling: str) -> None:
    addresses = await system_resolver(spelling, 80)
    assert addresses
    assert all(a.is_loopback or a.ipv4_mapped is not None for a in addresses)
    assert not DestinationPolicy().allows(spelling, addresses)


async def test_localhost_resolves_to_refused_addresses_only() -> None:
    addresses = await system_resolver("localhost", 80)
    assert addresses
    assert all(address.is_loopback for address in addresses)
    assert not DestinationPolicy().allows("localhost", addresses)


@pytest.mark.parametrize("host", SPELLINGS + UNSPECIFIED)
async def test_every_spelling_of_loopback_is_refused_by_default(
    internal: tuple[int, Hits], host: str
) -> None:
    port, hits = internal
    before = len(hits.paths)
    with pytest.raises(FailNow) as refused:
        await _fn()({"task": "http", "url": f"http://{host}:{port}/latest/meta-data/token"})
    assert str(refused.value) == REFUSED_MESSAGE
    assert SECRET not in str(refused.value)
    assert len(hits.paths) == before  # not even a connection reached the service


@pytest.mark.parametrize("host", SPELLINGS + UNSPECIFIED)
async def test_the_allow_list_opens_loopback_for_every_spelling(
    internal: tuple[int, Hits], host: str
) -> None:
    # Each refusal above withheld a real answer: opened, the same URL reaches the service.
    port, _ = internal
    allow = {"localhost": "localhost", "0.0.0.0": "0.0.0.0/32", "[::]": "::/128"}.get(
        host, LOOPBACK_ALLOWED
    )
    result = await _fn(allow)({"task": "http", "url": f"http://{host}:{port}/ok"})
    assert result["status_code"] == 200
    assert result["body"].startswith(SECRET)


async def test_a_listed_range_does_not_open_its_neighbours(internal: tuple[int, Hits]) -> None:
    port, _ = internal
    fn = _fn("127.0.0.1/32")
    assert (await fn({"url": f"http://127.1:{port}/"}))["status_code"] == 200
    with pytest.raises(FailNow, match=REFUSED_MESSAGE):
        await fn({"url": f"http://[::1]:{port}/"})


async def test_refusal_says_nothing_about_open_or_closed_ports(
    internal: tuple[int, Hits],
) -> None:
    port, _ = internal
    with serve("127.0.0.1") as (closed, _):
        pass  # the port is closed now
    messages = []
    for target in (port, closed):
        with pytest.raises(FailNow) as refused:
            await _fn()({"url": f"http://127.0.0.1:{target}/"})
        messages.append(str(refused.value))
    assert messages == [REFUSED_MESSAGE, REFUSED_MESSAGE]


async def test_every_redirect_hop_is_checked() -> None:
    # An allowed service on 127.0.0.1 redirects to a forbidden one on 127.0.0.2.
    with serve("127.0.0.1") as (front, front_hits), serve("127.0.0.2") as (back, back_hits):
        url = f"http://127.0.0.1:{front}/redirect?to=http://127.0.0.2:{back}/secret"
        narrow = DestinationPolicy.parse("127.0.0.1/32")
        async with guarded_client(narrow, timeout=5, follow_redirects=True) as client:
            with pytest.raises(DestinationRefused, match=REFUSED_MESSAGE):
                await client.get(url)
        assert front_hits.paths == [f"/redirect?to=http://127.0.0.2:{back}/secret"]
        assert back_hits.paths == []
        # The same redirect is followed once the second hop is allowed too.
        wide = DestinationPolicy.parse("127.0.0.0/8")
        async with guarded_client(wide, timeout=5, follow_redirects=True) as client:
            response = await client.get(url)
        assert response.text.startswith(SECRET)
        assert back_hits.paths == ["/secret"]


async def test_a_rebound_name_connects_only_where_it_was_checked(
    internal: tuple[int, Hits],
) -> None:
    port, hits = internal

    async def rebound(host: str, port: int) -> list[IPAddress]:
        return [ip_address("127.0.0.1")]  # a public name whose DNS now answers loopback

    before = len(hits.paths)
    async with guarded_client(DestinationPolicy(), timeout=5, resolver=rebound) as client:
        with pytest.raises(DestinationRefused):
            await client.get(f"http://public.example:{port}/")
    assert len(hits.paths) == before
    # Allowed, the connection goes to the checked address; the name stays the Host header.
    allowed = DestinationPolicy.parse("127.0.0.1/32")
    async with guarded_client(allowed, timeout=5, resolver=rebound) as client:
        response = await client.get(f"http://public.example:{port}/")
    assert response.text == f"{SECRET} host=public.example:{port}"


async def test_tls_verifies_the_url_host_not_the_address_connected_to() -> None:
    async def to_loopback(host: str, port: int) -> list[IPAddress]:
        return [ip_address("127.0.0.1")]

    allowed = DestinationPolicy.parse("127.0.0.1/32")
    with serve("127.0.0.1", tls=True) as (port, hits):
        async with guarded_client(
            allowed, timeout=5, resolver=to_loopback, ssl_context=trusting_test_ca()
        ) as client:
            response = await client.get(f"https://{TLS_NAME}:{port}/")
            assert response.text == f"{SECRET} host={TLS_NAME}:{port}"
            # Same address, another name: the certificate does not name it.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(f"https://other.test:{port}/")
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(f"https://127.0.0.1:{port}/")
    assert hits.paths == ["/"]


async def test_proxy_variables_cannot_carry_the_request_around_the_guard(
    internal: tuple[int, Hits], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, hits = internal
    # A proxy on loopback that would fetch anything for us: the guard must not use it.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{port}")
    before = len(hits.paths)
    with pytest.raises(FailNow, match=REFUSED_MESSAGE):
        await _fn()({"url": f"http://127.0.0.1:{port}/"})
    assert len(hits.paths) == before


async def test_refused_and_hopeless_jobs_fail_after_one_attempt(
    store: PostgresStore, internal: tuple[int, Hits]
) -> None:
    port, hits = internal
    registry = build_registry([], demo=False, demo_delay=0, http=HttpTaskSettings(timeout=5))
    pool = WorkerPool(store, registry, PoolSettings(concurrency=4, poll_interval=0.05))
    refused = [{"task": "http", "url": f"http://{host}:{port}/token"} for host in SPELLINGS]
    hopeless = [
        {"task": "http", "url": "ftp://files.example/x"},
        {"task": "http", "url": "not a url"},
        {"task": "http", "url": "http://example.com/", "method": "BREW"},
    ]
    before = len(hits.paths)
    await pool.start()
    try:
        async with api_client(store, on_enqueue=pool.notify) as client:
            ids = []
            for payload in refused + hopeless:
                response = await client.post("/jobs", json=payload, params={"max_attempts": 5})
                assert response.status_code == 201
                ids.append(response.json()["id"])

            async def all_failed() -> list[dict[str, Any]] | None:
                jobs = [(await client.get(f"/jobs/{job_id}")).json() for job_id in ids]
                return jobs if all(job["status"] == "failed" for job in jobs) else None

            jobs = await eventually(all_failed, within=15)
    finally:
        await pool.stop(5)
    for job in jobs:
        assert job["attempts"] == 1
        assert job["max_attempts"] == 5
        assert len(job["errors"]) == 1
        assert SECRET not in json.dumps(job)
    for job in jobs[: len(refused)]:
        assert job["result"]["error"] == REFUSED_MESSAGE
        assert "traceback" not in job["result"]
    for job in jobs[len(refused) :]:
        assert job["result"]["error"].startswith("invalid http payload")
    assert len(hits.paths) == before
