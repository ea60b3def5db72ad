from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.proc import JqsProcess, jqs_env

StartJqs = Callable[..., JqsProcess]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "acceptance" in str(item.path):
            item.add_marker(pytest.mark.acceptance)


def serve_env(**env: str) -> dict[str, str]:
    """The environment of a test's `jqs`: any free port on loopback, fast polls, the tests'
    handlers; `env` on top."""
    defaults = {
        "PORT": "0",
        "JQS_HOST": "127.0.0.1",
        "JQS_TASKS": "tests.support.tasks",
        "JQS_DEMO_DELAY": "0.05",
        "JQS_POLL_INTERVAL": "0.2",
    }
    return jqs_env(**{**defaults, **env})


@pytest.fixture
def start_jqs(tmp_path: Path) -> Iterator[StartJqs]:
    """Start `jqs ARGS` (default: serve) with test-friendly settings, in tmp_path unless
    given `cwd`, behind `prefix` (e.g. prlimit) if given; killed at teardown."""
    started: list[JqsProcess] = []

    def start(
        *args: str, cwd: Path | None = None, prefix: tuple[str, ...] = (), **env: str
    ) -> JqsProcess:
        proc = JqsProcess(
            *(args or ("serve",)), env=serve_env(**env), cwd=cwd or tmp_path, prefix=prefix
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
