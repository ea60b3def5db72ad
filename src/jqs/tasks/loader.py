"""Build the task registry a JQS process serves: built-ins plus the JQS_TASKS modules."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jqs.errors import ConfigError
from jqs.netguard import DestinationPolicy
from jqs.tasks.demo import demo_tasks
from jqs.tasks.http import http_task
from jqs.tasks.registry import TaskRegistry, marked_tasks


@dataclass(frozen=True)
class HttpTaskSettings:
    """How the built-in `http` task behaves: longest request, largest body kept, and where
    it may send requests."""

    timeout: float = 30.0
    max_body: int = 65_536
    policy: DestinationPolicy = field(default_factory=DestinationPolicy)


def build_registry(
    modules: Sequence[str],
    *,
    demo: bool,
    demo_delay: float,
    http: HttpTaskSettings | None,
) -> TaskRegistry:
    """Import each module and register its @task handlers after the built-ins.

    `http=None` leaves the built-in `http` task out. A user module may take over a demo
    task's name (that is the point of the demos being replaceable); two user handlers for
    one name are an error. The name `http` stays reserved even when the built-in is off, so
    that a payload written for it never runs some other handler.
    """
    registry = TaskRegistry()
    if http is not None:
        registry.add(
            http_task(default_timeout=http.timeout, max_body=http.max_body, policy=http.policy)
        )
    user = TaskRegistry()
    here = str(Path.cwd())
    if modules and here not in sys.path:
        # As with `python -m`, the directory JQS starts in is importable: JQS_TASKS=myapp.tasks
        # finds ./myapp/tasks.py, whichever way `jqs` was launched.
        sys.path.insert(0, here)
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise ConfigError(f"invalid setting JQS_TASKS: cannot import {name!r}: {exc}") from exc
        for spec in marked_tasks(module):
            user.add(spec)
    if demo:
        for spec in demo_tasks(demo_delay):
            if spec.name not in user:
                registry.add(spec)
    for task_name in user.names():
        if task_name == "http":
            raise ConfigError("invalid setting JQS_TASKS: 'http' is a built-in task name")
        user_spec = user.get(task_name)
        assert user_spec is not None
        registry.add(user_spec)
    return registry
