"""The receiver examples of docs/events.md, run as they are written (Python, and Node
when `node` is installed) against deliveries from a real `jqs serve`: each verifies the
signature of what JQS sends, and refuses what it did not sign."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import StartJqs
from tests.support.proc import REPO

ADMIN = "test-admin-key-0123456789abcdefghijkl"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
DOC = REPO / "docs" / "events.md"


def _example(heading: str, language: str) -> str:
    section = DOC.read_text().split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    [code] = re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)
    return code


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


RECEIVERS = {
    "python": ("A receiver in Python", "python", "receiver.py", [sys.executable]),
    "node": ("A receiver in Node", "js", "receiver.js", ["node"]),
}


@pytest.fixture(params=sorted(RECEIVERS))
def receiver_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    if kind == "node" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    return kind


@pytest.fixture
def run_receiver(tmp_path: Path, receiver_kind: str) -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []
    heading, language, name, command = RECEIVERS[receiver_kind]
    script = tmp_path / name
    script.write_text(_example(heading, language))

    def start(secret: str, port: int) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*command, str(script)],
            env={"JQS_WEBHOOK_SECRET": secret, "PORT": str(port), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.communicate()


def test_the_docs_receiver_verifies_what_jqs_sends(
    dsn: str, start_jqs: StartJqs, run_receiver: object
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = start_jqs(
        DATABASE_URL=dsn,
        JQS_ADMIN_KEY=ADMIN,
        JQS_HTTP_ALLOW="127.0.0.1",
        JQS_WEBHOOK_SCHEDULE=",".join(["0"] + ["0.3"] * 60),
    )
    with httpx.Client(base_url=proc.url, timeout=10) as client:
        hook = client.post(
            "/webhooks", json={"url": url, "events": ["job.completed"]}, headers=AUTH
        ).json()
        receiver = run_receiver(hook["secret"], port)  # type: ignore[operator]
        job = client.post("/jobs", json={"task": "send_email"}, headers=AUTH).json()
        # The receiver prints each verified event.
        with ThreadPoolExecutor(1) as pool:
            line = pool.submit(receiver.stdout.readline).result(timeout=60)
        assert json.loads(line) == {
            "type": "job.completed",
            "job": job["id"],
            "status": "completed",
        }
        # A message it did not sign is refused.
        forged = httpx.post(
            url,
            content=b'{"type": "job.completed"}',
            headers={
                "webhook-id": "msg_1",
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            },
        )
        assert forged.status_code == 400
