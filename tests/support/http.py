"""An httpx client wired to a JQS app in-process (ASGI), for contract tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

from jqs.api.app import create_app
from jqs.api.state import ApiState, Limits
from jqs.store import JobStore, QueueStore


@asynccontextmanager
async def api_client(
    store: JobStore,
    *,
    limits: Limits | None = None,
    on_enqueue: Callable[[str], None] = lambda queue: None,
) -> AsyncIterator[httpx.AsyncClient]:
    state = ApiState(
        jobs=store,
        queues=QueueStore(store._pool),
        limits=limits or Limits(),
        on_enqueue=on_enqueue,
    )
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://jqs.test") as client:
        yield client
