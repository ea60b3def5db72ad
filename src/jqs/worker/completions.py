"""CompletionWriter: finished attempts share one UPDATE, and no task waits for it.

A handler that returned hands its result here and its task ends. Whatever finished while
one batch was being written goes out as the next batch (see jqs.batching: a lone job is
written at once, a busy worker writes hundreds per statement), and each attempt then learns
how its write went through a plain callback. Compared with a future awaited per job, this
saves a future and a task step per job: at tens of thousands of jobs a second, those were a
large share of the worker's own time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from jqs.batching import Batcher
from jqs.jsonutil import RawJSON
from jqs.logging import get_logger
from jqs.worker.persist import NotSaved, persist

K = TypeVar("K")
log = get_logger(__name__)


class _Store(Protocol):
    async def complete_many(
        self, outcomes: Sequence[tuple[int, UUID, RawJSON]]
    ) -> Sequence[bool]: ...


_Item = tuple[K, tuple[int, UUID, RawJSON]]


class CompletionWriter(Generic[K]):
    """Batches (job id, lease token, result) writes; reports each as saved, lost or unsaved."""

    def __init__(
        self,
        store: _Store,
        written: Callable[[K, bool | None], None],
        *,
        persist_for: float,
        max_size: int = 500,
    ) -> None:
        self._store = store
        # Called per item with True (saved), False (the lease was lost: another worker
        # owns the job) or None (the database stayed away; logged by persist()).
        self._written = written
        self._persist_for = persist_for
        self._batcher: Batcher[_Item[K], bool | None] = Batcher(self._write, max_size=max_size)

    def add(self, key: K, job_id: int, lease_token: UUID, result: RawJSON) -> None:
        """Queue one completion; `written(key, ...)` is called once it is settled."""
        self._batcher.add((key, (job_id, lease_token, result)), self._settled)

    def _settled(self, item: _Item[K], saved: bool | BaseException | None) -> None:
        # Only a cancelled write reaches here as an exception: the outcome is unknown.
        self._written(item[0], None if isinstance(saved, BaseException) else saved)

    async def _write(self, items: Sequence[_Item[K]]) -> Sequence[bool | None]:
        outcomes = [outcome for _, outcome in items]
        try:
            return await persist(
                functools.partial(self._store.complete_many, outcomes), self._persist_for
            )
        except NotSaved:
            return [None] * len(items)
        except Exception as exc:  # a bug must not leave attempts waiting forever
            log.error("job_outcome_not_saved", error=repr(exc))
            return [None] * len(items)
