"""Knowing at once, without asking, that a waiting request's client has gone.

Starlette's `Request.is_disconnected()` peeks at the next ASGI message under a cancelled
scope: each call costs the request a turn of the event loop, behind whatever else is ready.
A request that waits (a long-polling claim) instead watches: once its body has been read,
the next message the server sends is `http.disconnect`, when the connection closes (or when
the answer has been sent, which is after the watch ends).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request


@contextlib.asynccontextmanager
async def departure(request: Request) -> AsyncIterator[asyncio.Future[None]]:
    """A future that is done once the client has gone, watched for the block's length.
    Enter it only after the request's body has been read."""
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    async def watch() -> None:
        # Anything but a disconnect (or a receive that fails) ends the watch: the request
        # then simply runs its course, as it would unwatched.
        with contextlib.suppress(Exception):
            if (await request.receive())["type"] == "http.disconnect":
                gone.set_result(None)

    watcher = loop.create_task(watch())
    try:
        yield gone
    finally:
        watcher.cancel()
