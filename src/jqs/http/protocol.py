"""uvicorn's httptools protocol, with the limits it lacks.

uvicorn (0.55) bounds neither the size nor the arrival time of a request's headers:
httptools buffers a header of any size, and the keep-alive timer stops at a request's first
byte with nothing to replace it, so a client sending a header line now and then holds its
connection forever. Its `limit_concurrency` answers 503 only once headers are complete, so
connections that never finish them still pile up until accept() runs out of descriptors and
everyone, health checks included, gets resets. This subclass adds, per connection:

- a header budget: the request line and headers together may take `max_header_bytes`;
  past that the answer is 431;
- a header deadline: a connection's first request, and any request that does not arrive
  in one read, must complete its headers within `header_timeout`; otherwise 408 (or, if no
  request began, nothing) and close;
- a cap: past `max_connections` open connections a new one is answered 503 at once and
  closed, instead of being held.

Every refusal is written, then the connection is half-closed and what the client still
sends is read and dropped for a moment (`LINGER`), so that the client reads the answer
instead of a reset. The common path, a request arriving whole in one read smaller than
the header budget, costs a few comparisons and no timer.

It leans on uvicorn's protocol internals (its data_received is mirrored here, and its
per-request attributes read). The lock files pin uvicorn; tests/acceptance/
test_connection_limits.py tries every limit over real sockets and fails if an upgrade
changes what this relies on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from jqs.http import replies
from jqs.logging import get_logger

# Seconds a refused connection is still read (and its input dropped) before it is closed.
LINGER = 1.0
# Seconds between two `connections_refused` lines while connections are being turned away.
LOG_EVERY = 10.0

log = get_logger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    """What one JQS HTTP server allows each connection, and how many it keeps open."""

    max_header_bytes: int = 65_536
    header_timeout: float = 10.0
    max_connections: int = 10_000
    # Connections past the cap that may be lingering at once; more are closed outright.
    max_turned_away: int = 256


class _TurnedAway:
    """Connections past the cap: how many are being answered now, and a log line now and
    then saying how many were turned away (one per server)."""

    def __init__(self) -> None:
        self.count = 0
        self._since_logged = 0
        self._logged_at = -LOG_EVERY

    def note(self, now: float, cap: int) -> None:
        self._since_logged += 1
        if now - self._logged_at >= LOG_EVERY:
            log.warning("connections_refused", turned_away=self._since_logged, max_connections=cap)
            self._since_logged = 0
            self._logged_at = now


class _HeadersTooLarge(Exception):
    """Raised inside the parser's callback to stop parsing a request with huge headers."""


class GuardedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a header budget, a header deadline and a connection cap."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    turned_away: ClassVar[_TurnedAway] = _TurnedAway()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._in_headers = False  # a request has begun and its headers are not complete
        self._headers_done = False  # a request's headers completed during this read
        self._header_bytes = 0
        self._read_size = 0  # bytes in the read being parsed
        self._one_read = True  # the current request's headers are all in the current read
        self._header_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._refused = False  # answered and closing: input is dropped from now on
        self._counted_away = False

    # Connection lifetime

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._turn_away(transport)
            return
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(
            self.limits.header_timeout, self._on_header_timeout
        )

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._header_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._linger_timer = None
        if self._counted_away:
            self._counted_away = False
            self.turned_away.count -= 1
        if self.flow is None:  # turned away before uvicorn saw the connection
            return
        super().connection_lost(exc)

    def _turn_away(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._refused = True
        self.turned_away.note(self.loop.time(), self.limits.max_connections)
        if self.turned_away.count >= self.limits.max_turned_away:
            transport.close()  # a flood past the cap: no descriptors to spare for lingering
            return
        self.turned_away.count += 1
        self._counted_away = True
        self._answer_and_close(replies.too_many_connections())

    # Reading

    def data_received(self, data: bytes) -> None:
        # uvicorn's own data_received, with the header budget and deadline around the feed.
        if self._refused:
            return
        self._unset_keepalive_if_required()
        was_in_headers = self._in_headers
        self._headers_done = False
        self._read_size = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadersTooLarge):
                self._refuse(replies.headers_too_large(self.limits.max_header_bytes))
                return
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
            return
        if self.transport.is_closing():
            return
        if self._in_headers:
            self._one_read = False
            # A request is part-way through its headers. Count what is certainly header
            # bytes: a read that began and ended inside the same request's headers.
            if was_in_headers and not self._headers_done:
                self._header_bytes += len(data)
                if self._header_bytes > self.limits.max_header_bytes:
                    self._refuse(replies.headers_too_large(self.limits.max_header_bytes))
                    return
        elif self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served (what came was its body, or nothing new)
        # Headers under way, or bytes on an idle connection that began no request (blank
        # lines): the deadline applies, as it would to a request line sent slowly.
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.limits.header_timeout, self._on_header_timeout
            )

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._headers_done = True
        self._header_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        # Headers that came in one read no larger than the budget fit in it; others (rare)
        # are measured.
        limit = self.limits.max_header_bytes
        if self._read_size > limit or not self._one_read:
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > limit:
                raise _HeadersTooLarge
        super().on_headers_complete()

    def on_message_begin(self) -> None:
        self._in_headers = True
        self._one_read = True
        super().on_message_begin()

    # Refusing

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        serving = self.cycle is not None and not self.cycle.response_complete
        if self.transport.is_closing() or (serving and not self._in_headers):
            return
        if self._in_headers:
            self._refuse(replies.headers_too_slow(self.limits.header_timeout))
        else:
            self._refuse(None)  # no request begun: nothing to answer

    def _refuse(self, reply: bytes | None) -> None:
        self._refused = True
        self._unset_keepalive_if_required()
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self.flow is not None:
            self.flow.resume_reading()
        self._answer_and_close(reply)

    def _answer_and_close(self, reply: bytes | None) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        if reply is not None:
            transport.write(reply)
        if reply is None or not transport.can_write_eof():
            transport.close()
            return
        # Half-close: the client sees the answer, then end of stream; until it hangs up
        # (or LINGER passes) its input is read and dropped, so that closing does not reset
        # the connection with unread data and lose the answer.
        transport.write_eof()
        self._linger_timer = self.loop.call_later(LINGER, transport.close)


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedProtocol]:
    """A GuardedProtocol class for one server: its limits, and its own turned-away count."""
    return type(
        "GuardedProtocol",
        (GuardedProtocol,),
        {"limits": limits, "turned_away": _TurnedAway()},
    )
