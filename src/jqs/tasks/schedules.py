"""Periodic schedules: from @task(cron=...) and from the JQS_CRON setting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jqs.models import DEFAULT_QUEUE
from jqs.tasks.names import check_cron, check_queue_name
from jqs.tasks.registry import TaskRegistry


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """Enqueue `payload` at every time `expression` names."""

    name: str
    expression: str
    payload: dict[str, Any] = field(default_factory=dict)
    queue: str = DEFAULT_QUEUE
    priority: int = 0


class CronEntry(BaseModel):
    """One schedule in JQS_CRON (a JSON list of these)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    cron: str
    payload: dict[str, Any]
    queue: str = DEFAULT_QUEUE
    priority: int = Field(default=0, ge=-32768, le=32767)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)

    @field_validator("queue")
    @classmethod
    def _queue(cls, value: str) -> str:
        return check_queue_name(value)


def schedules_for(registry: TaskRegistry, entries: list[CronEntry]) -> list[CronSchedule]:
    """Every schedule: one per @task(cron=...) plus the configured entries."""
    found: dict[str, CronSchedule] = {}
    for name in registry.names():
        spec = registry.get(name)
        if spec is not None and spec.options.cron:
            found[f"task:{name}"] = CronSchedule(
                name=f"task:{name}",
                expression=spec.options.cron,
                payload={"task": name},
                queue=spec.options.queue or DEFAULT_QUEUE,
            )
    for entry in entries:
        if entry.name in found:
            raise ValueError(f"two schedules are named {entry.name!r}")
        found[entry.name] = CronSchedule(
            name=entry.name,
            expression=entry.cron,
            payload=entry.payload,
            queue=entry.queue,
            priority=entry.priority,
        )
    return list(found.values())
