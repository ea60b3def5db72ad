"""Scheduler: enqueues periodic jobs, each scheduled time exactly once across processes.

Every process runs one. At each tick it asks the database to enqueue, for every schedule,
the latest time that has come; a row lock on the schedule makes exactly one process succeed
per time. Missed times (everything was down) are not replayed one by one: the most recent is
run once when JQS is back, the older ones are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from croniter import croniter

from jqs.clock import Clock, SystemClock
from jqs.jsonutil import RawJSON, dumps
from jqs.logging import get_logger
from jqs.maintenance.periodic import Periodic
from jqs.metrics import Metrics, NoMetrics
from jqs.models import EnqueueOptions, NewJob
from jqs.port import Maintenance, ScheduleFire
from jqs.tasks.defaults import JobDefaults
from jqs.tasks.schedules import CronSchedule

log = get_logger(__name__)


def latest_due(expression: str, now: datetime) -> datetime:
    """The latest time the expression names that is not after `now` (`now` itself counts)."""
    # croniter's get_prev is strictly before its start, so start a microsecond later.
    due: datetime = croniter(expression, now + timedelta(microseconds=1)).get_prev(datetime)
    return due


class Scheduler(Periodic):
    """Fires `schedules` into the queue; sleeps until the next time that can come (<= 1 s)."""

    def __init__(
        self,
        store: Maintenance,
        schedules: Sequence[CronSchedule],
        defaults: JobDefaults,
        *,
        clock: Clock | None = None,
        on_enqueue: Callable[[str], None] = lambda queue: None,
        metrics: Metrics | None = None,
    ) -> None:
        clock = clock or SystemClock()
        self._metrics = metrics or NoMetrics()
        super().__init__("scheduler", 1.0, self._round, clock=clock)
        self._store = store
        self._schedules = list(schedules)
        self._defaults = defaults
        self._on_enqueue = on_enqueue
        self._registered = False

    async def start(self) -> None:
        """Begin ticking; does nothing when there are no schedules."""
        if self._schedules:
            await super().start()

    async def register(self) -> None:
        """Make every schedule known to the database (first fire after now)."""
        now = self._clock.now()
        for schedule in self._schedules:
            await self._store.schedule_register(
                schedule.name, schedule.expression, latest_due(schedule.expression, now)
            )
        self._registered = True

    async def tick(self, now: datetime | None = None) -> list[int]:
        """Enqueue every schedule's latest due time not yet enqueued; returns new job ids."""
        if not self._registered:
            await self.register()
        now = now or self._clock.now()
        created = []
        for schedule in self._schedules:
            due = latest_due(schedule.expression, now)
            max_attempts, timeout = self._defaults.resolve(
                str(schedule.payload.get("task")), max_attempts=None, timeout=None
            )
            options = EnqueueOptions(
                queue=schedule.queue,
                priority=schedule.priority,
                max_attempts=max_attempts,
                timeout=timeout,
            )
            job = NewJob(RawJSON(dumps(schedule.payload)), options)
            job_id = await self._store.schedule_fire(ScheduleFire(schedule.name, due, job))
            if job_id is not None:
                created.append(job_id)
                log.info(
                    "cron_enqueued",
                    schedule=schedule.name,
                    scheduled_for=due.isoformat(),
                    job_id=job_id,
                    queue=schedule.queue,
                    status="queued",
                )
                task = schedule.payload.get("task")
                self._metrics.enqueued(schedule.queue, task if isinstance(task, str) else None)
                self._on_enqueue(schedule.queue)
        return created

    async def _round(self) -> float:
        await self.tick()
        now = self._clock.now()
        upcoming = min(croniter(s.expression, now).get_next(datetime) for s in self._schedules)
        return min(1.0, max(0.01, (upcoming - self._clock.now()).total_seconds()))
