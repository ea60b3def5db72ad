"""WorkerPool: claims jobs, runs at most `concurrency` at once, keeps their leases.

Three loops, each in its own method:

- the claim loop claims as many jobs as there are free slots (plus a few ahead, see
  jqs.worker.prefetch) in one statement, then waits until a slot frees, an enqueue wakes it,
  or the poll interval passes;
- `_attempt` is one job from the moment a slot takes it: run the handler
  (jqs.worker.executor), whose progress reports go to their own throttled writer
  (jqs.worker.progress), free the slot, and hand the outcome to the writer
  (jqs.worker.outcomes), which writes it with others and logs it;
- the lease loop renews the leases of held jobs (every lease/3), looks for cancellation
  requests (every second), and interrupts what it finds lost or cancelled.

On stop it claims nothing more, hands back jobs still waiting for a slot, lets running ones
finish until the deadline, then interrupts the rest and hands them back (attempt uncounted).
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import socket
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from jqs import __version__
from jqs.clock import Clock, SystemClock
from jqs.errors import StoreError
from jqs.logging import bind_job, get_logger, job_event, job_events_at
from jqs.metrics import Metrics, NoMetrics
from jqs.models import DEFAULT_QUEUE, JobStatus, Lease
from jqs.outcome import HandedBack, LeaseLost, Outcome
from jqs.port import ClaimParams, JobQueue, LeaseCheckParams, WorkerBeat
from jqs.tasks.registry import TaskRegistry
from jqs.tracing import Tracing
from jqs.worker.attempt import Attempt, AttemptState, Interrupt
from jqs.worker.executor import Executor, RetryPolicy
from jqs.worker.outcomes import OutcomeWriter
from jqs.worker.prefetch import Prefetch
from jqs.worker.progress import PROGRESS_INTERVAL, ProgressWriter

log = get_logger(__name__)
TASK_THREAD_PREFIX = "jqs-task"
# Cancellation of a running job should take effect within about a second.
CANCEL_CHECK_INTERVAL = 1.0
# How often the pool tells the store it is alive (jqs.port.WORKER_SILENCE_SECONDS).
WORKER_BEAT_INTERVAL = 10.0


def make_worker_id() -> str:
    """host:pid:random, unique per pool, readable in logs and in `jobs.worker_id`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How a pool works."""

    concurrency: int = 5
    queues: Sequence[str] = (DEFAULT_QUEUE,)
    poll_interval: float = 1.0
    lease_seconds: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # How long an outcome's write is retried while the database is away (default: a lease).
    persist_for: float | None = None
    # Per job, at most one progress report is written per this many seconds.
    progress_interval: float = PROGRESS_INTERVAL

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not self.queues:
            raise ValueError("a worker pool serves at least one queue")


class WorkerPool:
    """A bounded set of concurrently running jobs fed by one claim loop."""

    def __init__(
        self,
        queue: JobQueue,
        registry: TaskRegistry,
        settings: PoolSettings | None = None,
        *,
        clock: Clock | None = None,
        worker_id: str | None = None,
        prefetch: Prefetch | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings = settings or PoolSettings()
        self._metrics = metrics = metrics or NoMetrics()
        self._tracing = tracing or Tracing()
        self.worker_id = worker_id or make_worker_id()
        self.queues = tuple(dict.fromkeys(settings.queues))
        self._queue = queue
        self._clock = clock = clock or SystemClock()
        self._threads = ThreadPoolExecutor(
            settings.concurrency, thread_name_prefix=TASK_THREAD_PREFIX
        )
        self._executor = Executor(
            registry, clock=clock, threads=self._threads, policy=settings.retry, rng=rng
        )
        self._outcomes = OutcomeWriter(
            queue,
            clock=clock,
            persist_for=settings.persist_for or settings.lease_seconds,
            worker_id=self.worker_id,
            metrics=metrics,
        )
        self._progress = ProgressWriter(queue, clock=clock, interval=settings.progress_interval)
        # Twice the concurrency at most: what is held ahead waits about two claim round
        # trips whatever the cap, and bigger claims cost less per job.
        self._prefetch = prefetch or Prefetch(2 * settings.concurrency, clock=clock.monotonic)
        self._waiting: collections.deque[Attempt] = collections.deque()
        self._active: set[Attempt] = set()  # RUNNING
        self._handed_back: list[Lease] = []
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()  # set whenever an attempt leaves the pool
        # Whether the queues may hold jobs to claim now. False after a claim came back short
        # with no limit in play (nothing was left), true again on any notify. While false, a
        # freed slot does not send the loop to claim: one job at a time, that claim would
        # come back empty. Jobs that become due without a notify (run_at, retry backoff)
        # are found by the poll, as when the pool is idle.
        self._may_have_more = True
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._log_starts = job_events_at("info")

    @property
    def active(self) -> int:
        """How many jobs are running now (handlers, and outcomes still being written)."""
        return len(self._active) + self._outcomes.pending

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
            concurrency=self.settings.concurrency,
            queues=list(self.queues),
            lease_seconds=self.settings.lease_seconds,
        )

    async def stop(self, drain_seconds: float) -> None:
        """Stop claiming, drain for up to `drain_seconds`, hand back the rest. Idempotent."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if not self._loops:
            self._threads.shutdown(wait=False)
            return
        claim_loop, lease_loop = self._loops
        await claim_loop
        # Jobs waiting for a slot have not started: back to the queue now, for another worker.
        waiting = [attempt.job.lease for attempt in self._waiting]
        self._waiting.clear()
        await self._release(waiting)
        if self._active:
            log.info("worker_draining", running=len(self._active), timeout=drain_seconds)
            # Leases keep being renewed while we drain.
            try:
                async with self._clock.timeout(drain_seconds):
                    await self._until(lambda: not self._active)
            except TimeoutError:
                for attempt in list(self._active):
                    attempt.stop(Interrupt.SHUTDOWN)
                await self._until(lambda: not self._active)
        # Outcomes being written finish that write (bounded by persist_for), and so do
        # progress reports being written.
        await self._outcomes.idle()
        await self._progress.idle()
        lease_loop.cancel()
        await asyncio.gather(lease_loop, return_exceptions=True)
        self._loops = []
        await self._release(self._handed_back)
        self._handed_back = []
        try:
            await self._queue.worker_gone(self.worker_id)
        except StoreError as exc:  # its row is forgotten once silent long enough
            log.warning("worker_not_unregistered", error=str(exc))
        self._threads.shutdown(wait=False, cancel_futures=True)
        log.info("worker_stopped", worker=self.worker_id)

    async def _until(self, done: Callable[[], bool]) -> None:
        """Wait until `done()` holds, looking again each time an attempt leaves."""
        while not done():
            self._settled.clear()
            await self._settled.wait()

    # The claim loop

    def _claim_room(self) -> int:
        """How many jobs to claim now: free slots, plus the prefetch target not yet in hand.

        A slot frees when its handler returns, so the next claim overlaps the write of the
        previous outcomes. Outcomes being written are capped at about `concurrency` as
        well, so a slow database cannot make the pool hold ever more claimed jobs.
        """
        concurrency = self.settings.concurrency
        running, writing = len(self._active), self._outcomes.pending
        ahead = self._prefetch.target() - len(self._waiting)
        return ahead + min(concurrency - running, 2 * concurrency - running - writing)

    async def _claim_loop(self) -> None:
        # Every attempt's task is started from this one (or from one started here), and so
        # inherits this binding: every log line of the pool names its worker.
        structlog.contextvars.bind_contextvars(worker=self.worker_id)
        while not self._stopping:
            try:
                timeout = await self._claim_once()
            except Exception as exc:  # never let the loop die: log, pause, carry on
                log.error("claim_loop_error", error=repr(exc))
                timeout = self.settings.poll_interval
            if timeout is not None:
                await self._clock.wait(self._wake, timeout)
            self._wake.clear()

    async def _claim_once(self) -> float | None:
        """Claim for the free slots; how long to wait before looking again (None: at once)."""
        poll = self.settings.poll_interval
        room = self._claim_room()
        if room <= 0:
            if self._outcomes.pending:  # outcomes being written may be what holds us back
                await self._outcomes.progress()
                return None
            return poll  # every slot is busy: a freed slot wakes the loop
        began = self._clock.monotonic()
        try:
            claimed = await self._queue.claim(
                ClaimParams(
                    queues=self.queues,
                    limit=room,
                    lease_seconds=self.settings.lease_seconds,
                    worker_id=self.worker_id,
                )
            )
        except StoreError as exc:
            log.warning("claim_failed", error=str(exc), retry_in=poll)
            # Sleep, not wait for a wake: enqueues must not turn a dead database into a spin.
            await self._clock.sleep(poll)
            return None
        self._prefetch.claim_took(self._clock.monotonic() - began)
        if self._stopping:
            # A claim that raced with stop(): run nothing new, give them back.
            await self._release([job.lease for job in claimed.jobs])
            return None
        self._waiting.extend(Attempt(job) for job in claimed.jobs)
        self._start_waiting()
        full = len(claimed.jobs) == room
        self._may_have_more = full or claimed.limited
        if full or claimed.ask_again:
            # The queues may hold more, or the next claim waits for work by itself.
            return None
        # A rate limit says when its next job may start; otherwise poll as usual.
        return min(poll, claimed.rate_wait or poll)

    def _start_waiting(self) -> None:
        while (
            self._waiting and len(self._active) < self.settings.concurrency and not self._stopping
        ):
            attempt = self._waiting.popleft()
            attempt.state = AttemptState.RUNNING
            self._active.add(attempt)
            # The loop's own create_task: asyncio.create_task adds a Python-level wrapper.
            attempt.task = asyncio.get_running_loop().create_task(self._attempt(attempt))

    # One attempt, from a free slot to its outcome

    async def _traced(self, attempt: Attempt) -> Outcome:
        """The attempt within its span (only when tracing is on: a span costs per job)."""
        outcome: Outcome | None = None
        with self._tracing.process(attempt.job) as span:
            try:
                outcome = await self._executor.run(attempt)
            finally:
                if span is not None:
                    span.outcome(outcome)
        return outcome

    async def _attempt(self, attempt: Attempt) -> None:
        job = attempt.job
        bind_job({"job_id": job.id, "task": job.task, "queue": job.queue, "attempt": job.attempt})
        self._metrics.started(job.queue, job.task, job.waited)
        began = self._clock.monotonic()
        outcome: Outcome | None = None
        attempt.progress = self._progress.open(job)
        try:
            if self._log_starts:
                job_event(
                    "info",
                    {
                        "status": JobStatus.PROCESSING.value,
                        "job_id": job.id,
                        "task": job.task,
                        "queue": job.queue,
                        "attempt": job.attempt,
                        "worker": self.worker_id,
                        "event": "job_started",
                        "logger_name": __name__,
                    },
                )
            if self._tracing.enabled:
                outcome = await self._traced(attempt)
            else:
                outcome = await self._executor.run(attempt)
        except Exception as exc:  # a bug here must not leave the slot or the pool in limbo
            log.error("job_runner_crashed", error=repr(exc))
        finally:
            self._slot_freed(attempt)
        if isinstance(outcome, LeaseLost):
            log.warning("job_lease_lost", detail="the lease expired; another worker owns it")
        elif isinstance(outcome, HandedBack):
            self._handed_back.append(job.lease)  # released together when the pool stops
        elif outcome is not None:
            duration_ms = round((self._clock.monotonic() - began) * 1000, 3)
            self._outcomes.add(job, outcome, duration_ms)  # written and logged there

    def _slot_freed(self, attempt: Attempt) -> None:
        """The handler is done: its slot takes the next job while the outcome is written."""
        attempt.state = AttemptState.WRITING
        if attempt.progress is not None:
            attempt.progress.close()
        self._active.discard(attempt)
        self._prefetch.handler_returned()
        self._start_waiting()
        self._settled.set()
        if self._may_have_more:
            self._wake.set()

    async def _release(self, leases: Sequence[Lease]) -> None:
        """Give jobs that will not run here back to the queue, attempt not counted."""
        if not leases:
            return
        try:
            released = await self._queue.release(leases)
        except StoreError as exc:
            # The leases expire and the rescuer brings them back; nothing is lost.
            log.error(
                "jobs_not_released", error=str(exc), job_ids=[lease.job_id for lease in leases]
            )
            return
        for lease in leases:
            log.info(
                "job_released",
                job_id=lease.job_id,
                status=JobStatus.QUEUED.value,
                worker=self.worker_id,
            )
        log.info("worker_handed_back", released=released)

    # The lease loop

    def _held(self) -> list[Lease]:
        held = [a.job.lease for a in self._active] + [a.job.lease for a in self._waiting]
        return held + self._outcomes.leases()

    async def _lease_loop(self) -> None:
        lease_seconds = self.settings.lease_seconds
        beat_every = lease_seconds / 3
        tick = min(CANCEL_CHECK_INTERVAL, beat_every)
        last_beat = last_alive = float("-inf")
        while True:
            now = self._clock.monotonic()
            try:  # any failure: log and try again next tick; never let the loop die
                if now - last_alive >= WORKER_BEAT_INTERVAL:
                    await self._beat()
                    last_alive = now
                leases = self._held()
                extend = now - last_beat >= beat_every - tick / 2
                if leases:
                    check = await self._queue.check_leases(
                        LeaseCheckParams(leases, lease_seconds if extend else None)
                    )
                    self._interrupt(check.lost, check.cancel_requested)
                if extend or not leases:
                    last_beat = now
            except Exception as exc:
                log.warning("heartbeat_failed", error=repr(exc))
            await self._clock.sleep(tick)

    async def _beat(self) -> None:
        await self._queue.worker_beat(
            WorkerBeat(
                id=self.worker_id,
                host=socket.gethostname(),
                queues=list(self.queues),
                version=__version__,
                concurrency=self.settings.concurrency,
                running=len(self._active),
            )
        )

    def _interrupt(self, lost: frozenset[int], cancel: frozenset[int]) -> None:
        if lost and self._waiting:  # another worker owns these now: never start them here
            self._waiting = collections.deque(a for a in self._waiting if a.job.id not in lost)
        for attempt in self._active:
            if attempt.job.id in lost:
                attempt.stop(Interrupt.LEASE_LOST)
            elif attempt.job.id in cancel:
                attempt.stop(Interrupt.CANCEL)
