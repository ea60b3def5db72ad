"""Which network destinations outbound requests may reach: the one rule, in one place.

A destination is judged by the addresses its host name resolves to, never by how the URL
spells it: `127.1`, `2130706433`, `0x7f.1` and `[::ffff:127.0.0.1]` are all 127.0.0.1 by the
time they are checked. By default only globally routable unicast addresses are allowed;
`JQS_HTTP_ALLOW` opens chosen host names (whatever they resolve to) and CIDR ranges.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_network,
)

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

REFUSED_MESSAGE = "destination not allowed by JQS_HTTP_ALLOW policy"

# Ranges refused whatever Python's `ipaddress` says about them: its `is_global` and
# `is_private` tables have changed between Python releases (3.11 calls fec0::/10 and
# multicast "global"), so the ranges that matter most are written out here as well.
_NOT_PUBLIC: tuple[IPNetwork, ...] = tuple(
    ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network", including the unspecified 0.0.0.0
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, including cloud metadata at 169.254.169.254
        "172.16.0.0/12",  # RFC 1918
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.168.0.0/16",  # RFC 1918
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including broadcast 255.255.255.255
        "::/128",  # unspecified
        "::1/128",  # loopback
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo, benchmarking, ORCHID)
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique-local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated, still routed inside some networks)
        "ff00::/8",  # multicast
    )
)

# The NAT64 well-known prefix: 64:ff9b::7f00:1 is translated to 127.0.0.1 on its way.
_NAT64 = IPv6Network("64:ff9b::/96")
_DOTTED_QUAD = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def embedded_ipv4(address: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 address stands for.

    A connection to such an address may end up at the IPv4 address inside it, so that is
    the address to judge: ::ffff:127.0.0.1 is loopback.
    """
    if isinstance(address, IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.sixtofour


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address: the only kind allowed by default.

    Refused: loopback, private (RFC 1918), link-local, CGNAT, unique-local, multicast,
    reserved, unspecified, documentation and benchmarking ranges, and every IPv6 form of an
    IPv4 address that is itself refused.
    """
    inner = embedded_ipv4(address)
    if inner is not None:
        return is_public(inner)
    if any(address in network for network in _NOT_PUBLIC):
        return False
    flags = (
        address.is_private,
        address.is_loopback,
        address.is_link_local,
        address.is_multicast,
        address.is_reserved,
        address.is_unspecified,
    )
    return address.is_global and not any(flags)


@dataclass(frozen=True)
class DestinationPolicy:
    """Where outbound requests may go: public addresses, plus what JQS_HTTP_ALLOW opens.

    `allow_hosts` are lower-case host names allowed whatever they resolve to (the operator
    vouches for them); `allow_networks` are ranges whose addresses are allowed.
    """

    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> DestinationPolicy:
        """The policy for a JQS_HTTP_ALLOW value; ValueError names a bad entry."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in text.split(","):
            entry = raw.strip()
            if not entry:
                continue
            network = _as_network(entry)
            if network is not None:
                networks.append(network)
            else:
                hosts.add(_as_host(entry))
        return cls(allow_hosts=frozenset(hosts), allow_networks=tuple(networks))

    def allows_host(self, host: str) -> bool:
        """True if `host` is named in the allow list (then its addresses are not checked)."""
        return normal_host(host) in self.allow_hosts

    def allows_address(self, address: IPAddress) -> bool:
        """True if `address` is public or inside an allowed range (directly or embedded)."""
        candidates: list[IPAddress] = [address]
        inner = embedded_ipv4(address)
        if inner is not None:
            candidates.append(inner)
        for candidate in candidates:
            if any(candidate in network for network in self.allow_networks):
                return True
        return is_public(address)

    def allows(self, host: str, addresses: Iterable[IPAddress]) -> bool:
        """True if a connection to `host`, resolved to `addresses`, may be made.

        Every address must pass, not just one: which of several addresses a connection ends
        up at is not ours to choose (the first may be refused, or time out), so a name that
        resolves to one public and one internal address could otherwise reach the internal
        one. A name that resolved to nothing is refused too.
        """
        if self.allows_host(host):
            return True
        checked = list(addresses)
        return bool(checked) and all(self.allows_address(a) for a in checked)


def normal_host(host: str) -> str:
    """A host name as the allow list compares it: lower case, no brackets or final dot."""
    return host.strip().strip("[]").rstrip(".").lower()


def _as_network(entry: str) -> IPNetwork | None:
    """The range an entry names, None for a host name; ValueError for a malformed range."""
    text = entry.strip("[]")
    if "/" not in text and ":" not in text and not _DOTTED_QUAD.match(text):
        return None
    try:
        return ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"{entry!r} is not a valid address or CIDR range: {exc}") from None


def _as_host(entry: str) -> str:
    host = normal_host(entry)
    labels = host.split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{entry!r} is neither a host name nor a CIDR range "
            "(write hosts without scheme, port or wildcard, e.g. api.internal or 10.0.0.0/8)"
        )
    if labels[-1].isdigit() or re.fullmatch(r"0x[0-9a-f]*", labels[-1]):
        # 127.1 or 0x7f.1: an address in a spelling the allow list does not take.
        raise ValueError(f"{entry!r} is not a valid address; write it as a.b.c.d or a CIDR")
    return host
