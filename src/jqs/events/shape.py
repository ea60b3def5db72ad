"""An event as clients see it, defined once: the JSON of GET /jobs/{id}/events, of every
SSE stream's `data:` line, and of what later parts (webhooks, the dashboard, the SDK)
send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import Field

from jqs.models import EventType, JobEvent, JSONObject


@dataclass(frozen=True, slots=True)
class EventView:
    """One event of one job."""

    id: Annotated[
        int,
        Field(description="the event's id: global, increasing in the order ids are handed out"),
    ]
    type: EventType
    job_id: int
    queue: Annotated[str | None, Field(description="the job's queue; null once it is deleted")]
    task: Annotated[str | None, Field(description="the job's task; null once it is deleted")]
    at: Annotated[datetime, Field(description="when it happened (the database's clock)")]
    data: Annotated[
        JSONObject | None,
        Field(
            description="what the type tells of, e.g. the attempt and worker of job.started, "
            "the error of job.failed (see docs/events.md)",
        ),
    ] = None

    @classmethod
    def of(cls, event: JobEvent) -> EventView:
        """The client's view of an event from the log."""
        return cls(
            event.id, event.type, event.job_id, event.queue, event.task, event.at, event.data
        )
