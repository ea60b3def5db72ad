"""Batcher: turn many concurrent single calls into few batched ones, without a timer.

While one batch is being written, new items wait; when it is done, everything that arrived
meanwhile goes out as the next batch. An idle service therefore writes each item at once
(no added latency), and a busy one writes in batches as large as the load makes them
(bounded by `max_size`). This is how concurrent POST /jobs requests share one INSERT and
one COMMIT, and finished jobs share one UPDATE.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Calls `flush(items)` (which returns one result per item, in order) for queued items."""

    def __init__(
        self, flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, max_size: int = 500
    ) -> None:
        self._flush = flush
        self._max_size = max_size
        self._pending: list[tuple[T, Callable[[T, R | BaseException], None]]] = []
        self._running: asyncio.Task[None] | None = None

    def add(self, item: T, done: Callable[[T, R | BaseException], None]) -> None:
        """Queue one item without waiting; `done(item, result)` is called once its batch is
        written (with the exception instead, if the write failed)."""
        self._pending.append((item, done))
        if self._running is None:
            self._running = asyncio.get_running_loop().create_task(self._drain())

    async def submit(self, item: T) -> R:
        """Queue one item; returns its result once its batch is written."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.add(item, functools.partial(_settle, future))
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_size]
                del self._pending[: self._max_size]
                try:
                    results = await self._flush([item for item, _ in batch])
                except BaseException as exc:  # every waiter learns of the failure
                    for item, done in batch:
                        done(item, exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (item, done), result in zip(batch, results, strict=True):
                    done(item, result)
        finally:
            self._running = None


def _settle(future: asyncio.Future[R], _: object, outcome: R | BaseException) -> None:
    if future.done():  # the waiter was cancelled
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
