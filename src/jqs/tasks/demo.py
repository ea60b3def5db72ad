"""DEMO handlers for the seed's ten example payloads. They do no real work.

Each one waits `delay` seconds (simulating work, as the seed's worker does) and returns a
result message, so every example in the seed's README completes out of the box. Turn them
off with JQS_DEMO_TASKS=false and register real handlers under these names instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jqs.tasks.registry import Handler, TaskSpec

SEED_EXAMPLE_TASKS: tuple[str, ...] = (
    "send_email",
    "resize_image",
    "generate_report",
    "backup_database",
    "notify_user",
    "transcode_video",
    "fetch_url",
    "update_cache",
    "process_payment",
    "send_sms",
)


def _demo_handler(name: str, delay: float) -> Handler:
    async def handler(payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(delay)
        return {
            "message": "Job completed successfully",
            "task": name,
            "demo": True,
            "note": "simulated by JQS's demo handler; no real work was done",
        }

    handler.__name__ = f"demo_{name}"
    handler.__qualname__ = handler.__name__
    return handler


def demo_tasks(delay: float) -> list[TaskSpec]:
    """The ten demo handlers, each simulating `delay` seconds of work."""
    return [TaskSpec.of(name, _demo_handler(name, delay)) for name in SEED_EXAMPLE_TASKS]
