"""Writes that end an attempt are retried while the database is briefly unreachable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from jqs.errors import DatabaseUnavailable, StoreError
from jqs.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")


class NotSaved(Exception):
    """A finishing write could not be made; already logged."""


async def persist(write: Callable[[], Awaitable[T]], persist_for: float) -> T:
    """Run `write`, retrying on DatabaseUnavailable for up to `persist_for` seconds.

    Gives up (NotSaved, logged) after that; the lease then brings the job back, so the
    attempt may be run again, but its end is never lost silently.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + persist_for
    delay = 0.05
    while True:
        try:
            return await write()
        except DatabaseUnavailable as exc:
            if loop.time() + delay > deadline:
                log.error("job_outcome_not_saved", error=str(exc))
                raise NotSaved from exc
            log.warning("job_outcome_retrying", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        except StoreError as exc:
            log.error("job_outcome_not_saved", error=str(exc))
            raise NotSaved from exc
