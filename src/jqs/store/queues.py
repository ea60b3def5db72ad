"""QueueStore: queue settings (limits, pause) and per-queue statistics."""

from __future__ import annotations

import asyncpg

from jqs.models import JobStatus, QueueInfo, QueueSettings
from jqs.store.database import planned_freely, wrap_errors
from jqs.store.queries import q

_UNSET = object()


class QueueStore:
    """Reads and writes the `queues` table; counts jobs per queue."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def update(
        self,
        name: str,
        *,
        concurrency_limit: int | object | None = _UNSET,
        rate_limit: float | object | None = _UNSET,
        paused: bool | object = _UNSET,
    ) -> QueueSettings:
        """Change what was given (None removes a limit); the rest stays as it was."""
        with wrap_errors():
            row = await self._pool.fetchrow(
                q("queue_upsert"),
                name,
                None if concurrency_limit is _UNSET else concurrency_limit,
                None if rate_limit is _UNSET else rate_limit,
                None if paused is _UNSET else paused,
                concurrency_limit is not _UNSET,
                rate_limit is not _UNSET,
                paused is not _UNSET,
            )
        assert row is not None
        return _settings(row)

    async def infos(self) -> list[QueueInfo]:
        """Every queue that has jobs or settings, by name."""
        with wrap_errors():
            async with planned_freely(self._pool) as conn:  # the counts read every row
                settings_rows = await conn.fetch(q("queue_settings"))
                count_rows = await conn.fetch(q("queue_counts"))
        settings = {row["name"]: _settings(row) for row in settings_rows}
        counts: dict[str, dict[JobStatus, int]] = {}
        oldest: dict[str, float | None] = {}
        for row in count_rows:
            per_status = counts.setdefault(row["queue"], dict.fromkeys(JobStatus, 0))
            per_status[JobStatus(row["status"])] = row["n"]
            if row["status"] == JobStatus.QUEUED.value and row["oldest_wait"] is not None:
                oldest[row["queue"]] = float(row["oldest_wait"])
        names = sorted(settings.keys() | counts.keys())
        return [
            QueueInfo(
                settings=settings.get(name, QueueSettings(name)),
                counts=counts.get(name, dict.fromkeys(JobStatus, 0)),
                oldest_queued_seconds=oldest.get(name),
            )
            for name in names
        ]


def _settings(row: asyncpg.Record) -> QueueSettings:
    return QueueSettings(
        name=row["name"],
        concurrency_limit=row["concurrency_limit"],
        rate_limit=row["rate_limit"],
        paused=row["paused"],
    )
