"""CronStore: periodic schedules, each scheduled time enqueued exactly once."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from jqs.jsonutil import RawJSON
from jqs.models import EnqueueOptions
from jqs.store.database import wrap_errors
from jqs.store.queries import q


class CronStore:
    """Reads and writes `cron_schedules`; fires schedules into `jobs`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def register(self, name: str, expression: str, start_after: datetime) -> None:
        """Make the schedule known; a new or changed one first fires after `start_after`."""
        with wrap_errors():
            await self._pool.execute(q("cron_schedule_register"), name, expression, start_after)

    async def fire(
        self, name: str, at: datetime, payload: RawJSON, options: EnqueueOptions
    ) -> int | None:
        """Enqueue the job for scheduled time `at`; the new job's id, or None when another
        process (or an earlier call) already enqueued that time."""
        key = f"cron:{name}:{at.isoformat()}"
        with wrap_errors():
            job_id: int | None = await self._pool.fetchval(
                q("cron_fire"),
                name,
                at,
                payload,
                options.queue,
                options.priority,
                options.max_attempts,
                options.timeout_seconds,
                key,
            )
        return job_id
