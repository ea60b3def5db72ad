"""A small open-loop HTTP/1.1 load generator on asyncio streams.

httpx costs about a millisecond of CPU per request, too much to send 1,000 requests a second
on a 2-core machine that also runs the server and the database. This client keeps a few
keep-alive connections and writes prepared request bytes, so the measurement is of the
server, not of the client.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from bench.pacing import paced


class Client:
    """Sends JSON to one host over `size` keep-alive connections."""

    def __init__(
        self, host: str, port: int, size: int = 16, headers: dict[str, str] | None = None
    ) -> None:
        self._host, self._port, self._size = host, port, size
        self._extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )

    async def open(self) -> None:
        for _ in range(self._size):
            self._idle.put_nowait(await asyncio.open_connection(self._host, self._port))

    async def close(self) -> None:
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """One POST; returns (status, body)."""
        return await self.request("POST", path, body)

    async def get(self, path: str) -> tuple[int, bytes]:
        """One GET; returns (status, body)."""
        return await self.request("GET", path, b"")

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        reader, writer = await self._idle.get()
        try:
            writer.write(
                f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\n"
                f"Content-Type: application/json\r\n{self._extra}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                name = line.lower()
                if name.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                elif name.startswith(b"transfer-encoding:") and b"chunked" in name:
                    return status, await _chunked(reader)
            return status, await reader.readexactly(length)
        finally:
            self._idle.put_nowait((reader, writer))


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body (GET /jobs streams its page), without trailers."""
    parts = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16):
        parts.append(await reader.readexactly(size + 2))  # the chunk and its CRLF
    await reader.readuntil(b"\r\n")
    return b"".join(part[:-2] for part in parts)


async def open_loop(
    client: Client, path: str, bodies: list[bytes], rate: float
) -> tuple[dict[int, tuple[float, float]], float, int]:
    """Send body i at t0 + i/rate, whatever the answers; returns ({job id: (time.time() the
    request was sent, time.time() its 201 arrived)}, achieved send rate, failures)."""
    answered: dict[int, tuple[float, float]] = {}
    failures = 0
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal failures
        sent = time.time()
        status, payload = await client.post(path, bodies[i])
        if status == 201:
            answered[orjson.loads(payload)["id"]] = (sent, time.time())
        else:
            failures += 1

    await paced(len(bodies), rate, one)
    achieved = len(bodies) / (time.perf_counter() - t0)
    return answered, achieved, failures
