"""An httpx client wired to a JQS app in-process (ASGI), for contract tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

from jqs.api.app import create_app
from jqs.api.bounds import QueueBounds
from jqs.api.serving import ServedQueues
from jqs.api.state import ApiState, ApiStore, Limits
from jqs.tracing import Tracing


@asynccontextmanager
async def api_client(
    store: ApiStore,
    *,
    limits: Limits | None = None,
    on_enqueue: Callable[[str], None] = lambda queue: None,
    served: ServedQueues | None = None,
    bounds: QueueBounds | None = None,
    tracing: Tracing | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    state = ApiState(
        store=store,
        limits=limits or Limits(),
        on_enqueue=on_enqueue,
        served=served,
        bounds=bounds,
        tracing=tracing or Tracing(),
    )
    if hasattr(store, "on_events"):
        store.on_events = state.events().wake  # as the composition root wires it
    if hasattr(store, "on_ended"):
        store.on_ended = state.events().ended
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://jqs.test") as client:
        yield client
