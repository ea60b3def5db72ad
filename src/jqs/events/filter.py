"""Which events a subscriber wants: one job's, or those of some queues, tasks and types."""

from __future__ import annotations

from dataclasses import dataclass

from jqs.models import EventType, JobEvent


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Each field None: any. A job's events match `queues` and `tasks` by the job's queue
    and task as the log reads them (a deleted job's events match no such limit)."""

    job_id: int | None = None
    queues: frozenset[str] | None = None
    tasks: frozenset[str] | None = None
    types: frozenset[EventType] | None = None

    def matches(self, event: JobEvent) -> bool:
        """Whether the subscriber wants `event`."""
        return (
            (self.job_id is None or event.job_id == self.job_id)
            and (self.types is None or event.type in self.types)
            and (self.queues is None or event.queue in self.queues)
            and (self.tasks is None or event.task in self.tasks)
        )
