"""What a delivery sends: `{type, timestamp, data: {event, job}}`, as JSON."""

from __future__ import annotations

from typing import Any

from jqs.jsonutil import dumps
from jqs.models import DueDelivery


def body_of(delivery: DueDelivery) -> str:
    """The body of a delivery's first attempt: its event, and its job as it stands then
    (the shape of GET /jobs/{id}). Later attempts send the same text again."""
    event, job = delivery.event, delivery.job
    shown: dict[str, Any] = {
        "id": event.id,
        "type": event.type,
        "job_id": event.job_id,
        "queue": job.queue if job is not None else None,
        "task": job.task if job is not None else None,
        "at": event.at,
        "data": event.data,
    }
    return dumps(
        {"type": event.type, "timestamp": event.at, "data": {"event": shown, "job": job}}
    ).decode()
