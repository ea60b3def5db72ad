"""What the HTTP layer needs from the rest of the process, passed in by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from jqs.store import JobStore
from jqs.tasks.defaults import JobDefaults
from jqs.tasks.registry import TaskRegistry


@dataclass(slots=True)
class Limits:
    """Input limits of the API."""

    max_body_bytes: int = 1_048_576
    max_json_depth: int = 64
    page_size_max: int = 100


@dataclass(slots=True)
class ApiState:
    """The job store, limits, and a hook called after each enqueue (wakes local workers)."""

    jobs: JobStore
    limits: Limits = field(default_factory=Limits)
    defaults: JobDefaults = field(default_factory=lambda: JobDefaults(TaskRegistry()))
    on_enqueue: Callable[[], None] = lambda: None
    shutting_down: bool = False


def api_state(request: Request) -> ApiState:
    """FastAPI dependency: the state this app was built with."""
    state: ApiState = request.app.state.jqs
    return state
