"""JobStore: every read and write of the `jobs` table, and nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from jqs.errors import JobNotFound
from jqs.jsonutil import RawJSON
from jqs.models import ClaimedJob, Job, JobFilter, JobStatus
from jqs.store.database import wrap_errors
from jqs.store.queries import q

# Largest value of PostgreSQL's bigint: ids beyond it cannot exist.
MAX_JOB_ID = 2**63 - 1


def _job(row: asyncpg.Record) -> Job:
    return Job(
        id=row["id"],
        payload=row["payload"],
        status=JobStatus(row["status"]),
        result=row["result"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        task=row["task"],
        queue=row["queue"],
        priority=row["priority"],
        run_at=row["run_at"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


class JobStore:
    """The narrow seam between JQS and PostgreSQL for jobs."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(self, payload: RawJSON) -> Job:
        """Insert one queued job; returns it once committed."""
        with wrap_errors():
            row = await self._pool.fetchrow(q("job_insert"), payload)
        assert row is not None
        return _job(row)

    async def get(self, job_id: int) -> Job:
        """The job with this id, or JobNotFound."""
        if not 0 < job_id <= MAX_JOB_ID:
            raise JobNotFound(job_id)
        with wrap_errors():
            row = await self._pool.fetchrow(q("job_get"), job_id)
        if row is None:
            raise JobNotFound(job_id)
        return _job(row)

    async def find(self, job_filter: JobFilter, *, limit: int, offset: int) -> list[Job]:
        """Jobs newest first (highest id first), narrowed by the filter."""
        status = job_filter.status.value if job_filter.status else None
        with wrap_errors():
            rows = await self._pool.fetch(q("job_list"), status, job_filter.task, limit, offset)
        return [_job(row) for row in rows]

    async def claim(
        self, queue: str, *, limit: int, lease_seconds: float, worker_id: str
    ) -> list[ClaimedJob]:
        """Move up to `limit` runnable jobs of `queue` to processing under a fresh lease."""
        with wrap_errors():
            rows = await self._pool.fetch(q("job_claim"), queue, limit, lease_seconds, worker_id)
        return [
            ClaimedJob(
                id=row["id"],
                payload=row["payload"],
                task=row["task"],
                queue=row["queue"],
                attempt=row["attempts"],
                lease_token=row["lease_token"],
            )
            for row in rows
        ]

    async def complete(self, job_id: int, lease_token: UUID, result: RawJSON) -> bool:
        """Finish an attempt as completed; False when the lease was no longer ours."""
        return await self._finish("job_complete", job_id, lease_token, result)

    async def fail(self, job_id: int, lease_token: UUID, error: RawJSON) -> bool:
        """Finish an attempt as failed; False when the lease was no longer ours."""
        return await self._finish("job_fail", job_id, lease_token, error)

    async def _finish(self, query: str, job_id: int, lease_token: UUID, data: RawJSON) -> bool:
        with wrap_errors():
            status = await self._pool.execute(q(query), job_id, lease_token, data)
        return status.endswith(" 1")

    async def release(self, claims: Sequence[tuple[int, UUID]]) -> int:
        """Hand claimed jobs back to the queue without counting the attempt."""
        if not claims:
            return 0
        ids = [job_id for job_id, _ in claims]
        tokens = [token for _, token in claims]
        with wrap_errors():
            status = await self._pool.execute(q("job_release"), ids, tokens)
        return int(status.rsplit(" ", 1)[1])

    async def count_by_status(self) -> dict[JobStatus, int]:
        """How many jobs are in each status (zero for none)."""
        with wrap_errors():
            rows = await self._pool.fetch(q("job_count_by_status"))
        counts = dict.fromkeys(JobStatus, 0)
        counts.update({JobStatus(row["status"]): row["n"] for row in rows})
        return counts

    async def ping(self) -> None:
        """Round-trip to the database; raises DatabaseUnavailable when it is gone."""
        with wrap_errors():
            await self._pool.fetchval(q("db_ping"))
