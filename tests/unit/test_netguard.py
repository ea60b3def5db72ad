"""The destination policy of outbound requests: which addresses, hosts and ranges pass
(no I/O: resolvers and sockets are stand-ins; tests/integration/test_http_ssrf.py has real ones)."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address, ip_network

import httpcore
import pytest

from jqs.errors import ConfigError
from jqs.netguard import (
    REFUSED_MESSAGE,
    DestinationPolicy,
    DestinationRefused,
    GuardedBackend,
    is_public,
)
from jqs.netguard.policy import IPAddress
from jqs.settings import load_settings

FORBIDDEN = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.0.1",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "224.0.1.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "198.18.0.1",
    "203.0.113.9",
    "::",
    "::1",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",
    "ff02::1",
    "ff0e::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:0.0.0.0",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::1",
    "2002:7f00:1::1",
    "2002:a00:1::1",
    "2001:db8::1",
    "2001::1",
    "100::1",
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "11.0.0.1",
    "100.63.255.255",
    "100.128.0.1",
    "172.15.255.255",
    "172.32.0.1",
    "192.167.255.255",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize("text", FORBIDDEN)
def test_internal_addresses_are_refused_by_default(text: str) -> None:
    address = ip_address(text)
    assert not is_public(address)
    assert not DestinationPolicy().allows("example.com", [address])


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_allowed(text: str) -> None:
    address = ip_address(text)
    assert is_public(address)
    assert DestinationPolicy().allows("example.com", [address])


def test_one_forbidden_address_among_public_ones_refuses_the_host() -> None:
    policy = DestinationPolicy()
    answer = [ip_address("8.8.8.8"), ip_address("10.0.0.5")]
    assert not policy.allows("mixed.example", answer)
    assert not policy.allows("nothing.example", [])


def test_allow_list_parses_hosts_and_ranges() -> None:
    policy = DestinationPolicy.parse(" Internal.API. , 10.0.0.0/8,127.0.0.1, [::1], fd00::/8,, ")
    assert policy.allow_hosts == frozenset({"internal.api"})
    assert policy.allow_networks == (
        ip_network("10.0.0.0/8"),
        ip_network("127.0.0.1/32"),
        ip_network("::1/128"),
        ip_network("fd00::/8"),
    )
    assert DestinationPolicy.parse("") == DestinationPolicy()


def test_a_listed_host_is_allowed_whatever_it_resolves_to() -> None:
    policy = DestinationPolicy.parse("metrics.internal")
    loopback = [ip_address("127.0.0.1")]
    assert policy.allows("metrics.internal", loopback)
    assert policy.allows("METRICS.internal.", loopback)
    assert not policy.allows("other.internal", loopback)
    assert not policy.allows("sub.metrics.internal", loopback)


def test_a_listed_range_allows_the_addresses_inside_it_only() -> None:
    policy = DestinationPolicy.parse("10.1.0.0/16,127.0.0.1/32")
    assert policy.allows("a", [ip_address("10.1.2.3")])
    assert policy.allows("a", [ip_address("127.0.0.1")])
    assert policy.allows("a", [ip_address("::ffff:127.0.0.1")])  # the same address, mapped
    assert policy.allows("a", [ip_address("10.1.2.3"), ip_address("8.8.8.8")])
    assert not policy.allows("a", [ip_address("10.2.0.1")])
    assert not policy.allows("a", [ip_address("127.0.0.2")])
    assert not policy.allows("a", [ip_address("::1")])
    assert not policy.allows("a", [ip_address("10.1.2.3"), ip_address("169.254.169.254")])


@pytest.mark.parametrize(
    "entry",
    [
        "http://internal",
        "internal:8080",
        "*.internal",
        "10.0.0.1/8",
        "10.0.0.0/33",
        "999.1.1.1",
        "127.1",
        "0x7f.1",
        "two words",
        "-bad.example",
    ],
)
def test_bad_allow_entries_are_refused_by_name(entry: str) -> None:
    with pytest.raises(ValueError, match=repr(entry).replace("*", r"\*")):
        DestinationPolicy.parse(f"ok.example,{entry}")


def test_bad_allow_list_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="invalid setting JQS_HTTP_ALLOW: 'a:1'"):
        load_settings(http_allow="a:1")
    settings = load_settings(http_allow="10.0.0.0/8,svc")
    assert settings.destination_policy == DestinationPolicy.parse("10.0.0.0/8,svc")
    assert load_settings().http_task is True


class _RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the real socket layer: records where it was asked to connect."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        raise httpcore.ConnectError("recorded, not connected")


class _Rebinding:
    """A resolver that gives a public address first and loopback afterwards (DNS rebinding)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = [[ip_address(a) for a in answer] for answer in answers]
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


async def test_the_guard_connects_to_the_address_it_checked_never_to_the_name() -> None:
    resolver = _Rebinding(["93.184.215.14"], ["127.0.0.1"])
    inner = _RecordingBackend()
    backend = GuardedBackend(DestinationPolicy(), resolver, inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("rebind.example", 80)
    assert resolver.calls == ["rebind.example"]  # resolved once, by the guard
    assert inner.connects == [("93.184.215.14", 80)]  # not the name: no second lookup
    # The next connection sees the rebound answer, and is refused before any connect.
    with pytest.raises(DestinationRefused, match=f"^{REFUSED_MESSAGE}$"):
        await backend.connect_tcp("rebind.example", 80)
    assert inner.connects == [("93.184.215.14", 80)]


async def test_the_guard_tries_each_checked_address_in_order() -> None:
    inner = _RecordingBackend()
    resolver = _Rebinding(["2606:4700::1", "93.184.215.14"])
    backend = GuardedBackend(DestinationPolicy(), resolver, inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("two.example", 443)
    assert inner.connects == [("2606:4700::1", 443), ("93.184.215.14", 443)]


async def test_a_mixed_answer_is_refused_before_any_connect() -> None:
    inner = _RecordingBackend()
    backend = GuardedBackend(DestinationPolicy(), _Rebinding(["8.8.8.8", "10.0.0.1"]), inner)
    with pytest.raises(DestinationRefused):
        await backend.connect_tcp("mixed.example", 80)
    assert inner.connects == []


async def test_a_name_that_does_not_resolve_is_a_transport_error() -> None:
    async def nowhere(host: str, port: int) -> list[IPAddress]:
        raise OSError("no such name")

    backend = GuardedBackend(DestinationPolicy(), nowhere, _RecordingBackend())
    with pytest.raises(httpcore.ConnectError, match="cannot resolve"):
        await backend.connect_tcp("nowhere.example", 80)


async def test_a_listed_name_with_no_address_is_a_transport_error() -> None:
    inner = _RecordingBackend()
    backend = GuardedBackend(DestinationPolicy.parse("empty.internal"), _Rebinding([]), inner)
    with pytest.raises(httpcore.ConnectError, match="resolved to no address"):
        await backend.connect_tcp("empty.internal", 80)
    assert inner.connects == []
