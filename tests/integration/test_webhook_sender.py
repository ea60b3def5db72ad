"""The webhook sender against real sockets on loopback: kept-alive connections, answers of
every framing, a connection closed by the other side, TLS, and the SSRF policy."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import ip_address

import pytest

from jqs.netguard import DestinationPolicy, DestinationRefused
from jqs.netguard.policy import IPAddress
from jqs.webhooks.sender import Sender
from tests.support.local_http import TLS_NAME, serve, trusting_test_ca

LOOPBACK = DestinationPolicy.parse("127.0.0.1")


class _Server:
    """Answers each request with `answer`; counts connections and requests."""

    def __init__(self, answer: bytes, close_after: bool = False) -> None:
        self.answer, self.close_after = answer, close_after
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                writer.write(self.answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@asynccontextmanager
async def _serving(server: _Server) -> AsyncIterator[str]:
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hooks/in?x=1"
    finally:
        listening.close()


async def test_connections_are_kept_and_the_request_is_whole() -> None:
    server = _Server(b"HTTP/1.1 204 No Content\r\n\r\n")
    sender = Sender(LOOPBACK)
    async with _serving(server) as url:
        for _ in range(3):
            answer = await sender.post(url, b'{"a": 1}', {"webhook-id": "msg_1"})
            assert answer.status == 204
    await sender.aclose()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /hooks/in?x=1 HTTP/1.1\r\n")
    assert b"\r\nwebhook-id: msg_1\r\n" in first
    assert first.endswith(b'\r\n\r\n{"a": 1}')


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nslow",
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nslow\r\n0\r\n\r\n",
    ],
)
async def test_status_and_retry_after_of_any_framing(answer: bytes) -> None:
    server = _Server(answer)
    sender = Sender(LOOPBACK)
    async with _serving(server) as url:
        for _ in range(2):
            got = await sender.post(url, b"{}", {})
            assert (got.status, got.retry_after) == (429, "7")
    await sender.aclose()
    assert server.connections == 1


async def test_a_connection_the_receiver_closed_is_replaced() -> None:
    # Answered as if to keep it, then closed: the next POST goes on a new connection.
    server = _Server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", close_after=True)
    sender = Sender(LOOPBACK)
    async with _serving(server) as url:
        for _ in range(3):
            assert (await sender.post(url, b"{}", {})).status == 200
            await asyncio.sleep(0.05)
    await sender.aclose()
    assert server.connections == 3
    assert len(server.requests) == 3


async def test_a_refused_destination_is_never_connected_to() -> None:
    server = _Server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    sender = Sender(DestinationPolicy())  # public addresses only
    async with _serving(server) as url:
        with pytest.raises(DestinationRefused):
            await sender.post(url, b"{}", {})
    assert server.connections == 0


async def test_tls_checks_the_certificate_against_the_urls_host() -> None:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ip_address("127.0.0.1")]

    with serve("127.0.0.1", tls=True) as (port, _):
        sender = Sender(LOOPBACK, resolver=resolver, ssl_context=trusting_test_ca())
        # The test server answers GET only: a 501 to a POST is an answer over TLS.
        assert (await sender.post(f"https://{TLS_NAME}:{port}/", b"{}", {})).status == 501
        with pytest.raises(ssl.SSLCertVerificationError):
            await sender.post(f"https://other.test:{port}/", b"{}", {})
        await sender.aclose()
