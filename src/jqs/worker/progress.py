"""ProgressWriter: handlers' progress reports reach the store, throttled per job.

Each running attempt gets a JobProgress (`open`), which its handler reports to through
`current_job().progress(...)`. A report never waits for the database: it replaces the job's
pending one and returns. Per job, one small task writes the pending report as soon as
`interval` has passed since the job's last write began, so a job is written at most once
per interval and the report written is always the latest. The first report of an attempt is
written at once.

When the attempt ends (`close`), a report whose write has not begun is dropped, not
written: the job's end clears its progress in the same statement that writes the end, and
its end event follows, so a last write would be a round trip that changes nothing one can
see on the job. A write already under way is let finish; it is fenced by the lease like
every other write, so it cannot touch the job once its end is written. When the store says
the lease is gone, the job's later reports are dropped.

Why not the outcome writer's batches: a job is written here at most a few times a second,
by one single-job statement the store already has, and keeping reports apart means a burst
of them never holds up an attempt's end. At most `max_writes` reports of the whole pool are
written at once, so reports cannot take the database connections that claims, lease
renewals and ends need. A report the store cannot take (the database is away) is logged
and dropped; the next report tries again.
"""

from __future__ import annotations

import asyncio
import contextlib

from jqs.clock import Clock
from jqs.errors import StoreError
from jqs.logging import get_logger
from jqs.models import ClaimedJob, Progress
from jqs.port import JobQueue

log = get_logger(__name__)

# Per job: at most one write per this many seconds (4 a second).
PROGRESS_INTERVAL = 0.25
# Per pool: reports written at once; one write takes about a round trip.
PROGRESS_WRITES_AT_ONCE = 2


class ProgressWriter:
    """Writes running jobs' latest progress reports, each job throttled on its own."""

    def __init__(
        self,
        queue: JobQueue,
        *,
        clock: Clock,
        interval: float = PROGRESS_INTERVAL,
        max_writes: int = PROGRESS_WRITES_AT_ONCE,
    ) -> None:
        self._queue = queue
        self.clock = clock
        self.interval = interval
        # Held by a job's task during its write only (not while it waits for its turn).
        self.slots = asyncio.Semaphore(max_writes)
        self._tasks: set[asyncio.Task[None]] = set()

    def open(self, job: ClaimedJob) -> JobProgress:
        """The sink for the reports of `job`'s attempt, which is starting (on the loop)."""
        return JobProgress(self, job, asyncio.get_running_loop())

    async def idle(self) -> None:
        """Return once no report is being written (the pool's attempts are all closed)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def start(self, job: JobProgress) -> asyncio.Task[None]:
        """Run `job`'s writing task (tracked until it ends)."""
        task = asyncio.get_running_loop().create_task(job.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def write(self, job: ClaimedJob, report: Progress) -> bool:
        """Whether the lease still held; a failed write is logged and counts as held."""
        try:
            return await self._queue.progress(job.lease, report)
        except StoreError as exc:
            log.warning("job_progress_not_saved", job_id=job.id, error=str(exc))
        except Exception as exc:  # a bug here must not stop the job's later reports
            log.error("job_progress_not_saved", job_id=job.id, error=repr(exc))
        return True


class JobProgress:
    """One attempt's progress: the pending report, and the task that writes it."""

    # One is made for every attempt, reporting or not.
    __slots__ = ("_closed", "_job", "_loop", "_next_at", "_pending", "_task", "_writer", "_writing")

    def __init__(
        self, writer: ProgressWriter, job: ClaimedJob, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._writer = writer
        self._job = job
        self._loop = loop
        self._pending: Progress | None = None
        self._task: asyncio.Task[None] | None = None
        self._writing = False
        self._closed = False  # the attempt ended, or its lease is lost
        self._next_at = float("-inf")  # when the next write may begin (monotonic)

    def report(self, report: Progress) -> None:
        """Take `report` as the latest; from the loop or from a sync handler's thread."""
        if self._closed:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._offer(report)
            return
        # RuntimeError: the loop has closed; the process is stopping, the attempt is over.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._offer, report)

    def close(self) -> None:
        """The attempt ended: drop what waits; a write under way finishes (lease-fenced)."""
        self._closed = True
        self._pending = None
        if self._task is not None and not self._writing:
            self._task.cancel()

    def _offer(self, report: Progress) -> None:
        if self._closed:
            return
        self._pending = report
        if self._task is None:
            self._task = self._writer.start(self)

    async def run(self) -> None:
        """Write the pending report whenever the interval allows, until none is left."""
        clock = self._writer.clock
        try:
            while self._pending is not None and not self._closed:
                wait = self._next_at - clock.monotonic()
                if wait > 0:
                    await clock.sleep(wait)
                    continue
                async with self._writer.slots:
                    report, self._pending = self._pending, None
                    if report is None or self._closed:
                        break
                    self._next_at = clock.monotonic() + self._writer.interval
                    self._writing = True
                    try:
                        held = await self._writer.write(self._job, report)
                    finally:
                        self._writing = False
                if not held:
                    self._closed = True  # another worker owns the job: no more reports
        except asyncio.CancelledError:
            if not self._closed:
                raise  # not our close(): let it through
        finally:
            self._task = None
