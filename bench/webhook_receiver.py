"""A fast webhook receiver for the bench: answers every POST 204 at once over keep-alive
connections, and stamps each with time.time() and the event's own time (the body's
`timestamp`, taken by the database when the event's transaction began).

    python -m bench.webhook_receiver PORT COUNT OUT

Exits once COUNT deliveries have come (or on SIGTERM), writing one line per delivery to OUT:
`received_at event_at webhook_id`, both times in Unix seconds.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import datetime

import orjson

_RESPONSE = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"


class _Protocol(asyncio.Protocol):
    def __init__(self, seen: list[tuple[float, bytes, bytes]], done: asyncio.Event, count: int):
        self._seen, self._done, self._count = seen, done, count
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self._buffer += data
        while True:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self._buffer[:head_end].lower()
            length = 0
            message_id = b""
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name == b"content-length":
                    length = int(value)
                elif name == b"webhook-id":
                    message_id = value.strip()
            end = head_end + 4 + length
            if len(self._buffer) < end:
                return
            body, self._buffer = self._buffer[head_end + 4 : end], self._buffer[end:]
            self._seen.append((now, body, message_id))
            assert self._transport is not None
            self._transport.write(_RESPONSE)
            if len(self._seen) >= self._count:
                self._done.set()


async def main(port: int, count: int, out: str) -> None:
    seen: list[tuple[float, bytes, bytes]] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    server = await loop.create_server(lambda: _Protocol(seen, done, count), "127.0.0.1", port)
    print("listening", flush=True)
    await done.wait()
    server.close()
    with open(out, "w") as file:
        for received, body, message_id in seen:
            at = datetime.fromisoformat(orjson.loads(body)["timestamp"]).timestamp()
            file.write(f"{received} {at} {message_id.decode()}\n")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
