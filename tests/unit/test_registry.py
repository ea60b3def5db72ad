from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from jqs import task
from jqs.errors import ConfigError, DuplicateTask
from jqs.tasks.demo import SEED_EXAMPLE_TASKS
from jqs.tasks.loader import HttpTaskSettings, build_registry
from jqs.tasks.registry import TaskRegistry, TaskSpec, marked_tasks


def _module(name: str, **members: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in members.items():
        setattr(module, key, value)
    return module


def test_task_decorator_forms() -> None:
    @task("named")
    async def a(payload: dict[str, Any]) -> None: ...

    @task()
    def b(payload: dict[str, Any]) -> None: ...

    @task
    def c(payload: dict[str, Any]) -> None: ...

    specs = {s.name: s for s in marked_tasks(_module("m", a=a, b=b, c=c, other=len))}
    assert set(specs) == {"named", "b", "c"}
    assert specs["named"].is_async
    assert not specs["b"].is_async


def test_decorated_functions_stay_callable() -> None:
    @task("double")
    def double(payload: dict[str, Any]) -> int:
        return int(payload["n"]) * 2

    assert double({"n": 2}) == 4


def test_two_handlers_for_one_name_are_refused() -> None:
    registry = TaskRegistry()
    registry.register("x", lambda p: None)
    with pytest.raises(DuplicateTask):
        registry.register("x", lambda p: None)


def test_builtins_and_demo_tasks_are_registered() -> None:
    registry = build_registry(
        [], demo=True, demo_delay=0, http=HttpTaskSettings(timeout=5, max_body=10)
    )
    assert set(registry.names()) == {"http", *SEED_EXAMPLE_TASKS}
    without = build_registry(
        [], demo=False, demo_delay=0, http=HttpTaskSettings(timeout=5, max_body=10)
    )
    assert without.names() == ["http"]


def test_the_http_task_can_be_left_out() -> None:
    registry = build_registry([], demo=False, demo_delay=0, http=None)
    assert registry.names() == []
    assert registry.get("http") is None


def test_user_module_can_replace_a_demo_task(monkeypatch: pytest.MonkeyPatch) -> None:
    @task("send_email")
    def real_send_email(payload: dict[str, Any]) -> str:
        return "sent"

    monkeypatch.setitem(sys.modules, "user_tasks_x", _module("user_tasks_x", f=real_send_email))
    registry = build_registry(
        ["user_tasks_x"], demo=True, demo_delay=0, http=HttpTaskSettings(timeout=5, max_body=10)
    )
    spec = registry.get("send_email")
    assert isinstance(spec, TaskSpec)
    assert spec.fn is real_send_email


def test_unimportable_module_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="JQS_TASKS: cannot import 'no_such_module_jqs'"):
        build_registry(
            ["no_such_module_jqs"],
            demo=False,
            demo_delay=0,
            http=HttpTaskSettings(timeout=5, max_body=10),
        )


def test_user_task_may_not_take_the_http_name(monkeypatch: pytest.MonkeyPatch) -> None:
    @task("http")
    def mine(payload: dict[str, Any]) -> None: ...

    monkeypatch.setitem(sys.modules, "user_tasks_y", _module("user_tasks_y", f=mine))
    with pytest.raises(ConfigError, match="built-in"):
        build_registry(
            ["user_tasks_y"], demo=False, demo_delay=0, http=HttpTaskSettings(timeout=5, max_body=1)
        )
    with pytest.raises(ConfigError, match="built-in"):  # reserved even with the built-in off
        build_registry(["user_tasks_y"], demo=False, demo_delay=0, http=None)


def test_task_default_queue() -> None:
    from jqs.tasks.defaults import JobDefaults
    from jqs.tasks.registry import TaskOptions, TaskSpec

    registry = TaskRegistry([TaskSpec.of("mail", lambda p: None, TaskOptions(queue="emails"))])
    defaults = JobDefaults(registry)
    assert defaults.queue("mail", None) == "emails"
    assert defaults.queue("mail", "urgent") == "urgent"
    assert defaults.queue("other", None) == "default"
