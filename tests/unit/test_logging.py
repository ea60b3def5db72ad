from __future__ import annotations

import json
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from jqs.api.access_log import AccessLog
from jqs.logging import configure_logging, get_logger


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def info_logs(capsys: pytest.CaptureFixture[str]) -> object:
    # After capsys has replaced sys.stdout, so the log lines land in the capture.
    configure_logging("info", cache=False)
    yield
    configure_logging("warning", cache=False)


def test_job_events_and_stdlib_lines_are_json(
    info_logs: object, capsys: pytest.CaptureFixture[str]
) -> None:
    get_logger("jqs.test").info("job_completed", job_id=7, task="x", status="completed")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    first, second = _lines(capsys.readouterr().out)
    assert first["event"] == "job_completed"
    assert (first["job_id"], first["status"], first["level"]) == (7, "completed", "info")
    assert first["logger"] == "jqs.test"
    assert "timestamp" in first
    assert second["event"] == "Started server process [42]"
    assert second["logger"] == "uvicorn.error"


async def test_access_log_skips_probes(
    info_logs: object, capsys: pytest.CaptureFixture[str]
) -> None:
    async def ok(request: object) -> PlainTextResponse:
        return PlainTextResponse("OK", status_code=201)

    app = AccessLog(Starlette(routes=[Route("/jobs", ok, methods=["POST"]), Route("/health", ok)]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.post("/jobs?queue=q")
        await client.get("/health")
        await client.get("/nowhere")
    lines = [line for line in _lines(capsys.readouterr().out) if line["event"] == "http_request"]
    assert [(line["method"], line["path"], line["status_code"]) for line in lines] == [
        ("POST", "/jobs?queue=q", 201),
        ("GET", "/nowhere", 404),
    ]
    assert all(isinstance(line["duration_ms"], float) for line in lines)
