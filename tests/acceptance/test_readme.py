"""The curl examples in the README work, as written, against a real `jqs serve`."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.proc import REPO, JqsProcess, jqs_env

README = REPO / "README.md"


def readme_curl_commands() -> list[str]:
    text = README.read_text()
    section = text.split("## Try it", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.startswith("curl ")]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_examples(tmp_path: Path, dsn: str) -> None:
    commands = readme_curl_commands()
    assert len(commands) >= 5
    env = jqs_env(DATABASE_URL=dsn, PORT="0", JQS_HOST="127.0.0.1", JQS_DEMO_DELAY="0.05")
    proc = JqsProcess("serve", env=env, cwd=tmp_path)
    try:
        base = proc.url

        def curl(command: str) -> str:
            argv = shlex.split(command.replace("http://localhost:8080", base))
            return subprocess.run(
                argv, capture_output=True, text=True, check=True, timeout=10
            ).stdout

        outputs = [curl(c) for c in commands]
        created = json.loads(outputs[0])
        assert created["id"] == 1
        assert created["status"] == "queued"
        assert json.loads(outputs[1])["id"] == 1
        assert isinstance(json.loads(outputs[2]), list)
        assert "OK" in outputs

        deadline = time.monotonic() + 10
        while json.loads(curl(commands[1]))["status"] != "completed":
            assert time.monotonic() < deadline, "job 1 never completed"
            time.sleep(0.05)
        filtered = json.loads(curl(commands[3]))
        assert [job["id"] for job in filtered] == [1]
        assert filtered[0]["result"]["message"] == "Job completed successfully"
        proc.signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        proc.kill()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_option_examples(tmp_path: Path, dsn: str) -> None:
    text = README.read_text()
    section = text.split("## Queues, priorities, delays and schedules", 1)[1].split("\n## ", 1)[0]
    commands = [line for line in section.splitlines() if line.startswith("curl ")]
    assert len(commands) == 3
    env = jqs_env(DATABASE_URL=dsn, PORT="0", JQS_HOST="127.0.0.1")
    proc = JqsProcess("serve", "--no-worker", env=env, cwd=tmp_path)
    try:
        host = proc.url.removeprefix("http://")
        jobs = []
        for command in commands:
            argv = shlex.split(command.replace("localhost:8080", host))
            out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10)
            jobs.append(json.loads(out.stdout))
        assert (jobs[0]["queue"], jobs[0]["priority"]) == ("emails", 10)
        assert jobs[1]["run_at"] > jobs[1]["created_at"]
        assert jobs[2]["run_at"] == "2030-01-01T09:00:00+00:00"
        proc.signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        proc.kill()


def test_readme_handler_example_runs_as_written(tmp_path: Path, dsn: str) -> None:
    # `JQS_TASKS=myapp.tasks make run` in a project directory holding myapp/tasks.py: the
    # installed `jqs` command (not `python -m`, which would add the directory itself).
    text = README.read_text()
    section = text.split("## Writing task handlers", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block is not None
    assert block.group(1).startswith("# myapp/tasks.py\n")
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "tasks.py").write_text(block.group(1))
    command = Path(sys.executable).parent / "jqs"
    assert command.exists(), "make install puts the jqs command beside the interpreter"
    env = jqs_env(DATABASE_URL=dsn, PORT="0", JQS_HOST="127.0.0.1", JQS_TASKS="myapp.tasks")
    env.pop("PYTHONPATH")
    proc = JqsProcess("serve", env=env, cwd=tmp_path, command=str(command))
    try:
        sent = _post(proc.url, {"task": "send_email", "to": "a@b.c"})
        resized = _post(proc.url, {"task": "resize_image", "width": 800})
        assert _finished(proc.url, sent["id"])["result"] == {"message": "sent", "job": sent["id"]}
        assert _finished(proc.url, resized["id"])["result"] == {"width": 800}
        proc.signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        proc.kill()


def test_readme_progress_example_runs_as_written(tmp_path: Path, dsn: str) -> None:
    text = README.read_text()
    section = text.split("## Writing task handlers", 1)[1].split("\n## ", 1)[0]
    [block] = [
        b for b in re.findall(r"```python\n(.*?)```", section, re.DOTALL) if "progress(" in b
    ]
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "tasks.py").write_text(block)
    env = jqs_env(DATABASE_URL=dsn, PORT="0", JQS_HOST="127.0.0.1", JQS_TASKS="myapp.tasks")
    proc = JqsProcess("serve", env=env, cwd=tmp_path)
    try:
        sent = _post(proc.url, {"task": "resize_all", "images": ["a.png", "b.png", "c.png"]})
        done = _finished(proc.url, sent["id"])
        assert (done["status"], done["result"]) == ("completed", {"resized": 3})
        assert done["progress"] is None, "an ended attempt shows no progress"
        proc.signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        proc.kill()


def _post(base: str, payload: dict[str, object]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base}/jobs",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        created: dict[str, Any] = json.load(response)
    return created


def _finished(base: str, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        with urllib.request.urlopen(f"{base}/jobs/{job_id}", timeout=10) as response:
            job: dict[str, Any] = json.load(response)
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_api_key_examples(tmp_path: Path, dsn: str) -> None:
    text = README.read_text()
    section = text.split("## API keys", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    create, export, *curls = block.group(1).splitlines()
    assert create.startswith(".venv/bin/jqs keys create ")
    assert export.startswith("export JQS_API_KEY=")
    assert len(curls) == 2
    env = jqs_env(DATABASE_URL=dsn, PORT="0", JQS_HOST="127.0.0.1")
    made = subprocess.run(
        ["bash", "-c", create.replace(".venv/bin/jqs", f"{sys.executable} -m jqs")],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("jqs_")
    proc = JqsProcess("serve", "--no-worker", env=env, cwd=tmp_path)
    try:
        shell_env = {**env, "JQS_API_KEY": secret}

        def run(command: str) -> str:
            line = command.replace("http://localhost:8080", proc.url)
            return subprocess.run(
                ["bash", "-c", line], env=shell_env, capture_output=True, text=True,
                timeout=10, check=True,
            ).stdout  # fmt: skip

        created = json.loads(run(curls[0]))
        assert created["status"] == "queued"
        assert created["created_by"] is not None
        assert [job["id"] for job in json.loads(run(curls[1]))] == [created["id"]]
        unauthenticated = run(curls[1].replace('-H "Authorization: Bearer $JQS_API_KEY"', ""))
        assert json.loads(unauthenticated)["status"] == 401
    finally:
        proc.kill()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_wait_example(tmp_path: Path, dsn: str) -> None:
    text = README.read_text()
    section = text.split("## Waiting for a result", 1)[1].split("\n## ", 1)[0]
    [command] = [line for line in section.splitlines() if line.startswith("curl ")]
    env = jqs_env(DATABASE_URL=dsn, PORT="0", JQS_HOST="127.0.0.1", JQS_DEMO_DELAY="0.2")
    proc = JqsProcess("serve", env=env, cwd=tmp_path)
    try:
        argv = shlex.split(command.replace("http://localhost:8080", proc.url))
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=40).stdout
        job = json.loads(out)
        assert job["status"] == "completed"
        assert job["result"]["message"] == "Job completed successfully"
    finally:
        proc.kill()
