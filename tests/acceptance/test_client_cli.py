"""The client commands of `jqs` (submit, submit-many, jobs, queues, top) as a user runs
them, against a real `jqs serve`: output, one-line errors and exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from jqs.client.cli import Exit
from tests.acceptance.conftest import StartJqs
from tests.support.proc import REPO, jqs_env

ADMIN = "test-admin-key-0123456789abcdefghijkl"


def jqs(
    url: str,
    *args: str,
    key: str = ADMIN,
    stdin: str | None = None,
    cwd: Path = REPO,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jqs", *args],
        env=jqs_env(JQS_URL=url, JQS_API_KEY=key, COLUMNS="200", **env),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, run.stderr
    return run.stdout


def as_json(run: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(run))


def one_line_error(run: subprocess.CompletedProcess[str], code: Exit) -> str:
    assert run.returncode == code, (run.returncode, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("jqs: ")
    return lines[0]


def test_submit_jobs_and_queues_commands(dsn: str, start_jqs: StartJqs, tmp_path: Path) -> None:
    url = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN).url

    result = ok(jqs(url, "submit", '{"task": "sleep", "seconds": 0.05}', "--wait"))
    assert json.loads(result)["slept"] == 0.05
    queued = ok(jqs(url, "submit", '{"task": "sleep"}', "--queue", "later", "--delay", "3600"))
    assert queued.startswith("job ")
    assert "queued in later" in queued
    failed = one_line_error(
        jqs(url, "submit", '{"task": "boom"}', "--max-attempts", "1", "--wait"), Exit.JOB_FAILED
    )
    assert "failed" in failed
    assert "boom" in failed
    late = jqs(
        url, "submit", '{"task": "sleep"}', "--delay", "3600", "--wait", "--wait-timeout", "1"
    )
    assert "still queued" in one_line_error(late, Exit.TIMED_OUT)

    lines = "\n".join(
        [json.dumps({"task": "sleep", "seconds": 0, "n": n}) for n in range(5)]
        + [json.dumps({"payload": {"task": "sleep", "n": 5}, "queue": "later", "delay": 60})]
    )
    (tmp_path / "jobs.jsonl").write_text(lines + "\n")
    summary = ok(jqs(url, "submit-many", str(tmp_path / "jobs.jsonl"), "--chunk", "4"))
    assert summary.startswith("submitted 6 jobs")
    assert ok(jqs(url, "submit-many", "-", stdin=lines)).startswith("submitted 6 jobs")
    bad = jqs(url, "submit-many", "-", stdin='{"task": "x"}\nnot json\n')
    assert "not JSON" in one_line_error(bad, Exit.INVALID)

    listed = as_json(jqs(url, "jobs", "list", "--task", "sleep", "--limit", "3", "--json"))
    assert len(listed) == 3
    assert [j["id"] for j in listed] == sorted((j["id"] for j in listed), reverse=True)
    newest = listed[0]["id"]
    assert as_json(jqs(url, "jobs", "show", str(newest), "--json"))["id"] == newest
    assert str(newest) in ok(jqs(url, "jobs", "show", str(newest)))
    assert as_json(jqs(url, "jobs", "cancel", str(newest), "--json"))["status"] == "cancelled"
    again = jqs(url, "jobs", "cancel", str(newest))
    assert "already cancelled" in one_line_error(again, Exit.CONFLICT)
    assert "retried: queued" in ok(jqs(url, "jobs", "retry", str(newest)))
    one_line_error(jqs(url, "jobs", "show", "999999999"), Exit.NOT_FOUND)
    assert "sleep" in ok(jqs(url, "jobs", "list", "--status", "completed"))

    assert as_json(jqs(url, "queues", "pause", "later", "--json"))["paused"] is True
    limited = as_json(
        jqs(url, "queues", "set", "later", "--concurrency", "3", "--rate", "2.5", "--json")
    )
    assert (limited["concurrency_limit"], limited["rate_limit"], limited["paused"]) == (
        3,
        2.5,
        True,
    )
    assert (
        as_json(jqs(url, "queues", "set", "later", "--rate", "none", "--json"))["rate_limit"]
        is None
    )
    assert "active" in ok(jqs(url, "queues", "resume", "later"))
    queues = {q["name"]: q for q in as_json(jqs(url, "queues", "list", "--json"))}
    assert queues["later"]["concurrency_limit"] == 3
    view = ok(jqs(url, "top", "--once"))
    assert "later" in view
    assert "default" in view


def test_errors_are_one_line_with_their_exit_code(dsn: str, start_jqs: StartJqs) -> None:
    url = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN).url
    made = httpx.post(
        f"{url}/keys",
        json={"name": "reader", "scopes": ["jobs:read"]},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ).json()
    refused = jqs(url, "submit", '{"task": "sleep"}', key=made["secret"])
    assert "jobs:submit" in one_line_error(refused, Exit.UNAUTHORIZED)
    unknown = jqs(url, "jobs", "list", key="not-a-key-at-all-0123456789")
    assert "401" in one_line_error(unknown, Exit.UNAUTHORIZED)
    gone = jqs("http://127.0.0.1:9", "queues", "list")
    assert "cannot reach" in one_line_error(gone, Exit.UNREACHABLE)
    assert "JSON" in one_line_error(jqs(url, "submit", "{nope"), Exit.INVALID)
    invalid = jqs(url, "submit", '{"task": "sleep"}', "--queue", "no spaces")
    assert "query.queue" in one_line_error(invalid, Exit.INVALID)


def test_submit_many_draws_a_progress_bar(dsn: str, start_jqs: StartJqs, tmp_path: Path) -> None:
    url = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN).url
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"task": "noop", "n": n}) + "\n" for n in range(30)))
    # Drawn as on a terminal (rich's TTY_COMPATIBLE).
    run = jqs(url, "submit-many", str(jobs), "--chunk", "10", TTY_COMPATIBLE="1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("submitted 30 jobs")
    assert "submitting" in run.stderr
    assert "100%" in run.stderr, "the bar reaches the end"
    assert "\x1b[" in run.stderr, "drawn in place, then cleared"
    # Piped, the bar is not drawn: stderr holds only what a script would want to read.
    piped = jqs(url, "submit-many", str(jobs))
    assert ok(piped).startswith("submitted 30 jobs")
    assert piped.stderr == ""


def test_top_shows_how_fast_jobs_finish(dsn: str, start_jqs: StartJqs) -> None:
    url = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN).url
    lines = "".join(json.dumps({"task": "sleep", "seconds": 0.02}) + "\n" for _ in range(400))
    viewer = subprocess.Popen(
        [sys.executable, "-m", "jqs", "top", "--interval", "0.5"],
        env=jqs_env(JQS_URL=url, JQS_API_KEY=ADMIN, COLUMNS="200", TTY_COMPATIBLE="1"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ok(jqs(url, "submit-many", "-", stdin=lines))
        time.sleep(2.5)  # a few refreshes while the worker drains
    finally:
        viewer.send_signal(signal.SIGINT)  # Ctrl-C
        out, errors = viewer.communicate(timeout=30)
    assert viewer.returncode == 0, errors
    assert "done/s" in out
    rates = [
        float(row.split("│")[-2])
        for row in out.splitlines()
        if row.startswith("│ default") and row.split("│")[-2].strip() not in ("", "-")
    ]
    assert rates, out
    assert max(rates) > 0, "jobs finished between two refreshes"
