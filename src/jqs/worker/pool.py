"""WorkerPool: claims jobs and runs at most `concurrency` of them at once.

One claim loop per pool. It claims as many jobs as there are free slots in one statement,
then sleeps until a slot frees, an in-process enqueue wakes it, or the poll interval passes.
On stop it claims nothing more, lets running jobs finish until the deadline, and hands the
rest back to the queue without counting the attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

from jqs.errors import StoreError
from jqs.logging import get_logger
from jqs.models import ClaimedJob, JobStatus
from jqs.store import JobStore
from jqs.tasks.registry import TaskRegistry
from jqs.worker.executor import JobExecutor

log = get_logger(__name__)
TASK_THREAD_PREFIX = "jqs-task"


def make_worker_id() -> str:
    """host:pid:random, unique per pool, readable in logs and in `jobs.worker_id`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class WorkerPool:
    """A bounded set of concurrently running jobs fed by one claim loop."""

    def __init__(
        self,
        store: JobStore,
        registry: TaskRegistry,
        *,
        concurrency: int = 5,
        queue: str = "default",
        poll_interval: float = 1.0,
        lease_seconds: float = 30.0,
        worker_id: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.worker_id = worker_id or make_worker_id()
        self._store = store
        self._queue = queue
        self._poll_interval = poll_interval
        self._lease_seconds = lease_seconds
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix=TASK_THREAD_PREFIX)
        self._executor = JobExecutor(
            store, registry, worker_id=self.worker_id, threads=self._threads
        )
        self._running: dict[asyncio.Task[None], ClaimedJob] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def active(self) -> int:
        """How many jobs are running now."""
        return len(self._running)

    def notify(self) -> None:
        """Work may be waiting: claim now instead of at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        """Begin claiming. Idempotent."""
        if self._loop_task is None and not self._stopping:
            self._loop_task = asyncio.create_task(self._claim_loop(), name="jqs-claim-loop")
            log.info(
                "worker_started",
                worker=self.worker_id,
                concurrency=self.concurrency,
                queue=self._queue,
            )

    async def stop(self, drain_seconds: float) -> None:
        """Stop claiming, drain for up to `drain_seconds`, hand back the rest. Idempotent."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
            self._loop_task = None
        if self._running:
            log.info(
                "worker_draining",
                worker=self.worker_id,
                running=len(self._running),
                timeout=drain_seconds,
            )
            await asyncio.wait(list(self._running), timeout=drain_seconds or None)
        await self._hand_back()
        self._threads.shutdown(wait=False, cancel_futures=True)
        log.info("worker_stopped", worker=self.worker_id)

    async def _hand_back(self) -> None:
        leftover = dict(self._running)
        if not leftover:
            return
        for job_task in leftover:
            job_task.cancel()
        await asyncio.wait(list(leftover))
        claims: list[tuple[int, UUID]] = [(job.id, job.lease_token) for job in leftover.values()]
        try:
            released = await self._store.release(claims)
        except StoreError as exc:
            log.error("jobs_not_released", error=str(exc), job_ids=[c[0] for c in claims])
            return
        for job in leftover.values():
            log.info(
                "job_released",
                job_id=job.id,
                task=job.task,
                attempt=job.attempt,
                status=JobStatus.QUEUED.value,
                worker=self.worker_id,
            )
        log.info("worker_handed_back", released=released)

    async def _claim_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self.concurrency - len(self._running)
            claimed = 0
            if free > 0:
                try:
                    jobs = await self._store.claim(
                        self._queue,
                        limit=free,
                        lease_seconds=self._lease_seconds,
                        worker_id=self.worker_id,
                    )
                except StoreError as exc:
                    log.warning("claim_failed", error=str(exc), retry_in=self._poll_interval)
                    jobs = []
                if self._stopping:
                    # A claim that raced with stop(): run nothing new, give them back.
                    await self._store.release([(j.id, j.lease_token) for j in jobs])
                    return
                for job in jobs:
                    self._spawn(job)
                claimed = len(jobs)
            if free > 0 and claimed == free:
                continue  # the queue may hold more; claim again at once
            timeout = self._poll_interval if free > 0 else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _spawn(self, job: ClaimedJob) -> None:
        job_task = asyncio.create_task(self._executor.run(job), name=f"jqs-job-{job.id}")
        self._running[job_task] = job
        job_task.add_done_callback(self._on_done)

    def _on_done(self, job_task: asyncio.Task[None]) -> None:
        self._running.pop(job_task, None)
        if not job_task.cancelled() and (exc := job_task.exception()) is not None:
            log.error("job_runner_crashed", error=repr(exc))
        self._wake.set()
