"""Job events written together at the end of a turn of the event loop: the same JSON lines
as a logger call gives."""

from __future__ import annotations

import asyncio
import json

import pytest

from jqs.logging import configure_logging, flush_job_events, get_logger, job_event


@pytest.fixture
def info_logs(capsys: pytest.CaptureFixture[str]) -> object:
    configure_logging("info", cache=False)
    yield
    configure_logging("warning", cache=False)


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def test_job_events_leave_at_the_end_of_the_turn_as_logger_lines(
    info_logs: object, capsys: pytest.CaptureFixture[str]
) -> None:
    fields = {"job_id": 7, "task": "x", "queue": "q", "attempt": 1, "worker": "w"}
    get_logger("jqs.test").info("job_started", status="processing", **fields)
    by_logger = _lines(capsys.readouterr().out)[0]
    job_event(
        "info",
        {"status": "processing", **fields, "event": "job_started", "logger_name": "jqs.test"},
    )
    job_event("debug", {"event": "not_written", "logger_name": "jqs.test"})
    job_event("warning", {**fields, "event": "job_failed", "logger_name": "jqs.test"})
    assert capsys.readouterr().out == "", "nothing before the turn ends"
    await asyncio.sleep(0)
    started, failed = _lines(capsys.readouterr().out)
    for line in (started, by_logger):
        line.pop("timestamp")
    assert list(started) == list(by_logger), "the same fields, in the same order"
    assert started == by_logger
    assert (failed["event"], failed["level"], failed["job_id"]) == ("job_failed", "warning", 7)


def test_outside_the_event_loop_a_job_event_is_written_at_once(
    info_logs: object, capsys: pytest.CaptureFixture[str]
) -> None:
    job_event("info", {"job_id": 1, "event": "job_started", "logger_name": "jqs.test"})
    [line] = _lines(capsys.readouterr().out)
    assert (line["event"], line["logger"], line["level"]) == ("job_started", "jqs.test", "info")
    flush_job_events()
    assert capsys.readouterr().out == ""
