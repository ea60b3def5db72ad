"""Handlers for benchmarks (JQS_TASKS=bench.tasks)."""

from __future__ import annotations

from typing import Any

from jqs import task


@task("noop")
async def noop(payload: dict[str, Any]) -> None:
    """Does nothing: what is measured is JQS itself."""
