"""POST a webhook: HTTP/1.1 over kept-alive connections, each made through the SSRF policy.

httpx (which the `http` task uses) spends milliseconds of CPU on each request, more than a
dispatcher that must send thousands per second from a process that also serves the API
and runs jobs can give. A webhook needs little of HTTP: one POST with a body, and the
answer's status and Retry-After. So the request is written here, and the answer is parsed
by httptools (the C parser uvicorn uses).

Every new connection resolves its host, and is made only if the policy allows every
address (jqs.netguard), to the address that was checked; TLS checks the certificate
against the URL's host. A kept-alive connection is used again for at most IDLE_SECONDS.
Redirects are not followed, and no proxy from the environment is used.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

from jqs.netguard import DestinationPolicy, DestinationRefused, Resolver, system_resolver

# A connection idle for longer is closed rather than used again: the other side may have
# closed it already, and its host may resolve elsewhere by now.
IDLE_SECONDS = 30.0
# Of an answer's body, at most this much is read to keep the connection; a longer answer
# closes it (only the status and headers matter).
MAX_READ = 65_536


class SendError(Exception):
    """The request could not be made or had no complete answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What a receiver answered."""

    status: int
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        self.writer.close()


class _Parsed:
    """httptools' callbacks: the answer's headers, and whether it has ended."""

    def __init__(self) -> None:
        self.retry_after: str | None = None
        self.headers_done = False
        self.keep_alive = False
        self.done = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self.retry_after = value.decode("latin-1").strip()

    def on_headers_complete(self) -> None:
        self.headers_done = True
        # Asked now: once the answer is complete the parser has reset, and says False.
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.done = True


class Sender:
    """Sends webhook POSTs; one per process, closed with `aclose`."""

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "jqs-webhooks",
    ) -> None:
        self._policy = policy
        self._resolve = resolver
        self._ssl = ssl_context
        self._user_agent = user_agent
        self._idle: dict[_Origin, list[_Connection]] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST `body` to `url`; the answer's status. Raises DestinationRefused when the
        policy forbids the host, SendError or OSError when no answer came. The caller
        bounds the time it may take."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SendError(f"not an http(s) URL: {url}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise SendError(f"bad port in {url}: {exc}") from None
        origin = _Origin(parts.scheme, parts.hostname, port)
        request = self._request(parts.path or "/", parts.query, origin, parts.netloc, body, headers)
        reused = self._take(origin)
        if reused is not None:
            try:
                return await self._exchange(origin, reused, request)
            except (SendError, OSError):
                pass  # the other side closed it meanwhile: once more on a new connection
        return await self._exchange(origin, await self._connect(origin), request)

    async def aclose(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _request(
        self,
        path: str,
        query: str,
        origin: _Origin,
        netloc: str,
        body: bytes,
        headers: dict[str, str],
    ) -> bytes:
        target = f"{path}?{query}" if query else path
        host = netloc.rpartition("@")[2]
        lines = [
            f"POST {target} HTTP/1.1",
            f"host: {host}",
            f"user-agent: {self._user_agent}",
            f"content-length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        head = "\r\n".join(lines) + "\r\n\r\n"
        if any(c in target for c in "\r\n "):
            raise SendError("the URL's path holds spaces or line breaks")
        return head.encode("latin-1") + body

    def _take(self, origin: _Origin) -> _Connection | None:
        connections = self._idle.get(origin)
        now = time.monotonic()
        while connections:
            connection = connections.pop()
            if now - connection.idle_since < IDLE_SECONDS and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    def _give_back(self, origin: _Origin, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        self._idle.setdefault(origin, []).append(connection)

    async def _connect(self, origin: _Origin) -> _Connection:
        addresses = await self._resolve(origin.host, origin.port)
        if not self._policy.allows(origin.host, addresses):
            raise DestinationRefused()
        context: ssl.SSLContext | None = None
        if origin.scheme == "https":
            context = self._ssl if self._ssl is not None else ssl.create_default_context()
        error: OSError = OSError(f"{origin.host} resolved to no address")
        for address in addresses:
            try:
                reader, writer = await asyncio.open_connection(
                    str(address),
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context is not None else None,
                )
            except OSError as exc:
                error = exc
                continue
            return _Connection(reader, writer)
        raise error

    async def _exchange(self, origin: _Origin, connection: _Connection, request: bytes) -> Answer:
        parsed = _Parsed()
        parser = parsed.parser
        try:
            connection.writer.write(request)
            await connection.writer.drain()
            after_headers = 0
            while not parsed.done:
                data = await connection.reader.read(MAX_READ)
                if not data:
                    if parsed.headers_done:
                        break  # an answer whose body ends with the connection
                    raise SendError("the connection closed before an answer came")
                try:
                    parser.feed_data(data)
                except httptools.HttpParserError as exc:
                    raise SendError(f"not an HTTP answer: {exc}") from None
                if parsed.headers_done and not parsed.done:
                    after_headers += len(data)
                    if after_headers > MAX_READ:
                        break
        except BaseException:
            connection.close()
            raise
        status = parser.get_status_code()
        if parsed.done and parsed.keep_alive:
            self._give_back(origin, connection)
        else:
            connection.close()
        return Answer(status, parsed.retry_after)
