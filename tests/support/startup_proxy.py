"""A TCP proxy in front of PostgreSQL that records each connection's startup parameters.

Connection poolers read the startup packet and refuse parameters they do not track; this
shows what a pooler would be sent, with the real server still answering everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit, urlunsplit

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    header = await reader.readexactly(8)
    length, code = struct.unpack("!ii", header)
    return code, header + await reader.readexactly(length - 8)


def _parameters(packet: bytes) -> dict[str, str]:
    fields = packet[8:].split(b"\0")
    names, values = fields[0:-2:2], fields[1:-2:2]  # the list ends with an empty name
    return {n.decode(): v.decode() for n, v in zip(names, values, strict=True)}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


class StartupRecorder:
    def __init__(self, dsn: str) -> None:
        self._target = urlsplit(dsn)
        self.seen: list[dict[str, str]] = []
        self._server: asyncio.Server | None = None

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        query = parse_qs(self._target.query)
        host = query.get("host", [self._target.hostname or "127.0.0.1"])[0]
        port = self._target.port or int(query.get("port", ["5432"])[0])
        if host.startswith("/"):
            return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        return await asyncio.open_connection(host, port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        code, packet = await _read_packet(reader)
        while code in (_SSL_REQUEST, _GSSENC_REQUEST):  # no encryption on loopback
            writer.write(b"N")
            code, packet = await _read_packet(reader)
        self.seen.append(_parameters(packet))
        up_reader, up_writer = await self._open_target()
        up_writer.write(packet)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Listen on loopback; yields the DSN that reaches the target through the proxy."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        user = self._target.username or "postgres"
        password = f":{self._target.password}" if self._target.password else ""
        netloc = f"{user}{password}@127.0.0.1:{port}"
        try:
            yield urlunsplit(("postgresql", netloc, self._target.path, "sslmode=disable", ""))
        finally:
            self._server.close()
            await self._server.wait_closed()
