"""An httpx client that can only connect where a DestinationPolicy allows.

The check lives in the network backend, below HTTP: each new connection resolves its host
once, checks every address, and then connects to a checked address itself. Nothing resolves
the name a second time, so DNS rebinding (a name that answers with a public address to the
check and a private one to the connect) has no second answer to exploit; every redirect hop
and every pooled connection goes through the same door. TLS still verifies the URL's host
name, which httpcore passes to the TLS layer separately from the address connected to.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from ipaddress import ip_address

import httpcore
import httpx

from jqs.netguard.policy import REFUSED_MESSAGE, DestinationPolicy, IPAddress

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


class DestinationRefused(Exception):
    """The policy forbids this destination. The message is the same for every refusal, so
    that it tells nothing of what the host resolved to or whether a port is open."""

    def __init__(self) -> None:
        super().__init__(REFUSED_MESSAGE)


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order, without repeats."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ip_address(str(sockaddr[0]))
        if address not in addresses:
            addresses.append(address)
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that checks each destination before connecting to it."""

    def __init__(
        self,
        policy: DestinationPolicy,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolve = resolver
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port, timeout)
        if not self._policy.allows(host, addresses):
            raise DestinationRefused()
        error: httpcore.ConnectError | httpcore.ConnectTimeout = httpcore.ConnectError(
            f"{host} resolved to no address"
        )
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def _addresses(self, host: str, port: int, limit: float | None) -> list[IPAddress]:
        try:
            async with asyncio.timeout(limit):
                return await self._resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused()  # a local socket is never an outbound destination

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport over a GuardedBackend.

    httpx.AsyncHTTPTransport takes no network backend, so its connection pool is replaced
    by one built with the guard; the rest (response streams, error mapping) is httpx's.
    """

    def __init__(self, backend: GuardedBackend, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context if ssl_context is not None else httpx.create_ssl_context(),
            network_backend=backend,
        )


def guarded_client(
    policy: DestinationPolicy,
    *,
    timeout: float,
    follow_redirects: bool = False,
    resolver: Resolver = system_resolver,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient whose every connection (redirects included) obeys `policy`.

    `ssl_context` replaces the default certificate checks (system CAs, or SSL_CERT_FILE);
    either way the certificate must name the URL's host, not the address connected to.

    It ignores proxy settings from the environment (HTTP_PROXY and the like): a proxy would
    make the connection for us, out of the guard's sight. A refused destination raises
    DestinationRefused, which is not an httpx.HTTPError: callers should treat it as final.
    """
    transport = GuardedTransport(GuardedBackend(policy, resolver), ssl_context)
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=follow_redirects,
        trust_env=False,
    )
