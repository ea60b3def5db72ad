from __future__ import annotations

import json
import logging

import pytest

from jqs.logging import configure_logging, get_logger


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_app_and_uvicorn_lines_are_json_with_stable_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info")
    try:
        get_logger("jqs.test").info("job_completed", job_id=7, task="x", status="completed")
        access = logging.getLogger("uvicorn.access")
        access.info('%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "POST", "/jobs", "1.1", 201)
        access.info('%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", "/health", "1.1", 200)
        access.info('%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", "/ready?x=1", "1.1", 200)
        lines = _lines(capsys.readouterr().out)
    finally:
        configure_logging("warning")
    assert lines[0]["event"] == "job_completed"
    assert lines[0]["job_id"] == 7
    assert lines[0]["status"] == "completed"
    assert "timestamp" in lines[0]
    assert lines[0]["level"] == "info"
    assert len(lines) == 2, "health and readiness probes stay out of the access log"
    assert lines[1]["event"] == "http_request"
    assert lines[1]["method"] == "POST"
    assert lines[1]["path"] == "/jobs"
    assert lines[1]["status_code"] == 201
