"""Batcher: turn many concurrent single calls into few batched ones, without a timer.

While one batch is being written, new items wait; when it is done, everything that arrived
meanwhile goes out as the next batch. An idle service therefore writes each item at once
(no added latency), and a busy one writes in batches as large as the load makes them
(bounded by `max_size`). This is how concurrent POST /jobs requests share one INSERT and one
COMMIT, and how every attempt's end shares one UPDATE with the others finishing with it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Calls `flush(items)` (which returns one result per item, in order) for queued items."""

    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_size: int = 500,
    ) -> None:
        self._flush = flush
        self._max_size = max_size
        self._pending: list[tuple[T, asyncio.Future[R] | None]] = []
        self._running: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Queue one item; returns its result once its batch is written."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue(item, future)
        return await future

    def add(self, item: T) -> None:
        """Queue one item whose result nobody waits for (`flush` acts on it itself)."""
        self._queue(item, None)

    def _queue(self, item: T, future: asyncio.Future[R] | None) -> None:
        self._pending.append((item, future))
        if self._running is None:
            # A context of its own: the batch serves many callers, so it must not carry
            # whatever the first of them bound to its log lines.
            self._running = asyncio.get_running_loop().create_task(
                self._drain(), context=contextvars.Context()
            )

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_size]
                del self._pending[: self._max_size]
                try:
                    results = await self._flush([item for item, _ in batch])
                except BaseException as exc:  # every waiter learns of the failure
                    for _, future in batch:
                        if future is not None and not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future is not None and not future.done():  # waiter may be gone
                        future.set_result(result)
        finally:
            self._running = None
