"""WorkerPool: claims jobs, runs at most `concurrency` of them at once, keeps their leases.

One claim loop per pool. It claims as many jobs as there are free slots in one statement,
then sleeps until a slot frees, an in-process enqueue wakes it, or the poll interval passes.
A second loop heartbeats the leases of the running jobs (every lease/3) and checks for
cancellation requests (every second). On stop it claims nothing more, lets running jobs
finish until the deadline, and hands the rest back to the queue without counting the attempt.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from jqs.errors import StoreError
from jqs.logging import get_logger
from jqs.models import DEFAULT_QUEUE, ClaimedJob, JobStatus
from jqs.store import JobStore
from jqs.tasks.registry import TaskRegistry
from jqs.worker.executor import Attempt, JobExecutor, RetryPolicy
from jqs.worker.prefetch import Prefetch

log = get_logger(__name__)
TASK_THREAD_PREFIX = "jqs-task"
# Cancellation of a running job should take effect within about a second.
CANCEL_CHECK_INTERVAL = 1.0


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
        queues: Sequence[str] = (DEFAULT_QUEUE,),
        poll_interval: float = 1.0,
        lease_seconds: float = 30.0,
        retry_policy: RetryPolicy | None = None,
        worker_id: str | None = None,
        prefetch: Prefetch | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.worker_id = worker_id or make_worker_id()
        self._store = store
        if not queues:
            raise ValueError("a worker pool serves at least one queue")
        self.queues = tuple(dict.fromkeys(queues))
        self._poll_interval = poll_interval
        self._lease_seconds = lease_seconds
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix=TASK_THREAD_PREFIX)
        policy = retry_policy or RetryPolicy(persist_for=lease_seconds)
        self._executor = JobExecutor(
            store, registry, worker_id=self.worker_id, threads=self._threads, policy=policy
        )
        # Every attempt not yet settled: its handler runs, or its outcome is being written.
        self._running: dict[Attempt, asyncio.Task[None]] = {}
        self._handling = 0  # attempts whose handler has not returned yet
        # Jobs claimed ahead of free slots (see jqs.worker.prefetch), started as slots free.
        self._ready: collections.deque[ClaimedJob] = collections.deque()
        # Twice the concurrency at most: what is held ahead waits about two claim round
        # trips whatever the cap, and bigger claims cost less per job.
        self._prefetch = prefetch or Prefetch(2 * concurrency)
        self._wake = asyncio.Event()
        # Whether the queues may hold jobs to claim now. False after a claim came back short
        # with no limit in play (nothing was left), true again on any notify. While false, a
        # freed slot does not send the loop to claim: one job at a time, that claim would
        # come back empty, twice per job (handler returned, outcome written). Jobs that
        # become due without a notify (run_at, retry backoff) are found by the poll, as
        # when the pool is idle.
        self._may_have_more = True
        self._settled = asyncio.Event()  # set whenever an attempt is finished
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def active(self) -> int:
        """How many jobs are running now (handlers, and outcomes still being written)."""
        return len(self._running)

    def _claim_room(self) -> int:
        """How many jobs to claim now: free slots, plus the prefetch target not yet in hand.

        A slot frees when its handler returns, so the next claim overlaps the write of the
        previous outcomes. Outcomes waiting to be written are capped at about `concurrency`
        as well, so a slow database cannot make the pool hold ever more claimed jobs.
        """
        ahead = self._prefetch.target() - len(self._ready)
        return ahead + min(
            self.concurrency - self._handling, 2 * self.concurrency - len(self._running)
        )

    def notify(self, queue: str | None = None) -> None:
        """Work may be waiting (in `queue`, or anywhere): claim now, not at the next poll."""
        if queue is None or queue in self.queues:
            self._may_have_more = True
            self._wake.set()

    async def start(self) -> None:
        """Begin claiming. Idempotent."""
        if self._loops or self._stopping:
            return
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="jqs-claim-loop"),
            asyncio.create_task(self._lease_loop(), name="jqs-lease-loop"),
        ]
        log.info(
            "worker_started",
            worker=self.worker_id,
            concurrency=self.concurrency,
            queues=list(self.queues),
            lease_seconds=self._lease_seconds,
        )

    async def stop(self, drain_seconds: float) -> None:
        """Stop claiming, drain for up to `drain_seconds`, hand back the rest. Idempotent."""
        self._stopping = True
        self._wake.set()
        claim_loop, *others = self._loops or [asyncio.create_task(asyncio.sleep(0))]
        await claim_loop
        # Jobs claimed ahead have not started: back to the queue now, for another worker.
        ready = list(self._ready)
        self._ready.clear()
        await self._release(ready)
        if self._running:
            log.info(
                "worker_draining",
                worker=self.worker_id,
                running=len(self._running),
                timeout=drain_seconds,
            )
            # Leases keep being renewed while we drain.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_seconds or None):
                    await self._settle(lambda: not self._running)
        for loop_task in others:
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
        self._loops = []
        await self._hand_back()
        self._threads.shutdown(wait=False, cancel_futures=True)
        log.info("worker_stopped", worker=self.worker_id)

    def _claims(self) -> list[tuple[int, uuid.UUID]]:
        running = [(a.job.id, a.job.lease_token) for a in self._running]
        return running + [(job.id, job.lease_token) for job in self._ready]

    async def _settle(self, done: Callable[[], bool]) -> None:
        """Wait until `done()` holds, looking again each time an attempt finishes."""
        while not done():
            self._settled.clear()
            await self._settled.wait()

    async def _hand_back(self) -> None:
        # Attempts already writing their outcome finish that write (bounded by the store's
        # timeouts and persist_for); only handlers still running are interrupted and
        # handed back.
        await self._settle(lambda: all(not a.writing for a in self._running))
        leftover = dict(self._running)
        if not leftover:
            return
        for job_task in leftover.values():
            job_task.cancel()
        await asyncio.wait(list(leftover.values()))
        for attempt in leftover:  # a task cancelled before it began never finished it
            attempt.start_writing()
            self._finished(attempt)
        await self._release([attempt.job for attempt in leftover])

    async def _release(self, jobs: Sequence[ClaimedJob]) -> None:
        """Give jobs that will not run here back to the queue, attempt not counted."""
        if not jobs:
            return
        claims = [(job.id, job.lease_token) for job in jobs]
        try:
            released = await self._store.release(claims)
        except StoreError as exc:
            # The leases expire and the rescuer brings them back; nothing is lost.
            log.error("jobs_not_released", error=str(exc), job_ids=[c[0] for c in claims])
            return
        for job in jobs:
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
            try:
                await self._claim_once()
            except Exception as exc:  # never let the loop die: log, pause, carry on
                log.error("claim_loop_error", error=repr(exc))
                await asyncio.sleep(self._poll_interval)

    async def _claim_once(self) -> None:
        """Claim for the free slots, then wait for a reason to look again."""
        self._wake.clear()
        room = self._claim_room()
        timeout: float | None = None
        if room > 0:
            began = time.perf_counter()
            try:
                claimed = await self._store.claim(
                    self.queues,
                    limit=room,
                    lease_seconds=self._lease_seconds,
                    worker_id=self.worker_id,
                )
            except StoreError as exc:
                log.warning("claim_failed", error=str(exc), retry_in=self._poll_interval)
                # Not the wake event: enqueues must not turn a dead database into a spin.
                await asyncio.sleep(self._poll_interval)
                return
            self._prefetch.claim_took(time.perf_counter() - began)
            jobs = claimed.jobs
            if self._stopping:
                # A claim that raced with stop(): run nothing new, give them back.
                await self._release(jobs)
                return
            self._ready.extend(jobs)
            self._start_ready()
            self._may_have_more = len(jobs) == room or claimed.limited
            if len(jobs) == room:
                return  # the queue may hold more; claim again at once
            # A rate limit says when its next job may start; otherwise poll as usual.
            timeout = min(self._poll_interval, claimed.rate_wait or self._poll_interval)
        # asyncio.timeout, not wait_for: wait_for runs the wait as a task of its own, and
        # the wake then takes three turns of the event loop to reach this one, each behind
        # whatever else is ready (at 200 jobs/s, about 0.3 ms from enqueue to claim).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _lease_loop(self) -> None:
        loop = asyncio.get_running_loop()
        beat_every = self._lease_seconds / 3
        tick = min(CANCEL_CHECK_INTERVAL, beat_every)
        last_beat = loop.time()
        while True:
            await asyncio.sleep(tick)
            claims = self._claims()
            if not claims:
                last_beat = loop.time()
                continue
            try:  # any failure: log and try again next tick; never let the loop die
                if loop.time() - last_beat >= beat_every - tick / 2:
                    held = await self._store.heartbeat(claims, self._lease_seconds)
                    last_beat = loop.time()
                    lost = {job_id for job_id, _ in claims} - held.keys()
                    cancel = {job_id for job_id, asked in held.items() if asked}
                else:
                    lost, cancel = set(), await self._store.cancel_requested(claims)
            except Exception as exc:
                log.warning("heartbeat_failed", error=repr(exc))
                continue
            self._interrupt(lost, cancel)

    def _interrupt(self, lost: set[int], cancel: set[int]) -> None:
        if lost and self._ready:  # another worker owns these now: never start them here
            self._ready = collections.deque(job for job in self._ready if job.id not in lost)
        for attempt, job_task in list(self._running.items()):
            if attempt.writing:
                continue  # the handler is done; its fenced write settles the matter
            if attempt.job.id in lost and not attempt.lease_lost:
                attempt.lease_lost = True
                job_task.cancel()
            elif attempt.job.id in cancel and not attempt.cancel_requested:
                attempt.cancel_requested = True
                job_task.cancel()

    def _start_ready(self) -> None:
        while self._ready and self._handling < self.concurrency and not self._stopping:
            job = self._ready.popleft()
            attempt = Attempt(job, on_writing=self._handler_returned, on_finished=self._finished)
            self._handling += 1
            self._running[attempt] = asyncio.create_task(self._executor.run(attempt))

    def _handler_returned(self) -> None:
        self._handling -= 1
        self._prefetch.handler_returned()
        self._start_ready()
        if self._may_have_more:
            self._wake.set()

    def _finished(self, attempt: Attempt) -> None:
        if self._running.pop(attempt, None) is not None:
            if self._may_have_more:
                self._wake.set()
            self._settled.set()
