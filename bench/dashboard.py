"""The dashboard over a long history: each page's server time with 1,000,000 finished jobs.

The table holds a million finished jobs (most completed, one in fifty failed with an error
and traceback; payloads carry a `user_id`), vacuumed and analyzed, plus a few queued. A
`jqs serve --no-worker` is signed in through the sign-in form, then each page is asked for
`RUNS` times. What is measured is the server's own time for each request, as its access log
line gives it (`duration_ms`: from the request's arrival to the end of the answer), the
median and the slowest. The budget is 100 ms per page.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from pathlib import Path

import asyncpg
import httpx
import orjson

from bench.common import free_port, jqs, wait_http
from bench.scenarios import Context, Row

HISTORY = 1_000_000
RUNS = 15
BUDGET_MS = 100.0
ADMIN = "bench-admin-key-0123456789abcdefghijklmnop"


async def _add_history(dsn: str, n: int) -> int:
    """Write `n` finished jobs and a few queued ones; the id of a failed job."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = off)")
        error = orjson.dumps(
            [{"error": "boom", "type": "ValueError", "attempt": 1, "traceback": "Trace\n" * 40}]
        ).decode()
        await conn.execute(
            """
            INSERT INTO jobs (payload, status, result, errors, attempts, created_at, updated_at,
                              started_at, finished_at, queue)
            SELECT jsonb_build_object('task', 'noop', 'user_id', g % 100000, 'region',
                                      CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END),
                   CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'completed' END,
                   'null'::jsonb,
                   CASE WHEN g % 50 = 0 THEN $2::jsonb ELSE '[]'::jsonb END,
                   1, t, t, t, t,
                   CASE WHEN g % 7 = 0 THEN 'mail' ELSE 'default' END
            -- Finished over the last day, the newest within the last minutes: the throughput
            -- chart's hour holds tens of thousands of them.
            FROM (SELECT g, now() - make_interval(secs => (g - 1) * 86000.0 / $1) AS t
                  FROM generate_series(1, $1) AS g) AS s
            ORDER BY t
            """,
            n,
            error,
        )
        await conn.execute(
            "INSERT INTO jobs (payload, queue) SELECT jsonb_build_object('task', 'noop', "
            "'user_id', g), 'default' FROM generate_series(1, 100) AS g"
        )
        await conn.execute("VACUUM ANALYZE jobs")
        failed: int = await conn.fetchval("SELECT max(id) FROM jobs WHERE status = 'failed'")
        return failed
    finally:
        await conn.close()


def pages(failed_id: int, since: str) -> list[tuple[str, str]]:
    """(label, path) of every page measured."""
    return [
        ("overview", "/ui"),
        ("jobs, newest", "/ui/jobs"),
        ("jobs, status failed", "/ui/jobs?status=failed"),
        ("jobs, task noop", "/ui/jobs?task=noop"),
        ("jobs, payload user_id = 42", "/ui/jobs?payload=user_id+%3D+42"),
        ("jobs, payload matching nothing", "/ui/jobs?payload=user_id+%3D+%22none%22"),
        (
            "jobs, payload + queue + status + time",
            f"/ui/jobs?payload=region+%3D+%22eu%22&queue=mail&status=completed&since={since}",
        ),
        ("jobs, second page", f"/ui/jobs?before={failed_id}"),
        ("bulk retry count, status failed", "/ui/jobs/bulk?action=retry&status=failed"),
        ("job detail (failed, with traceback)", f"/ui/jobs/{failed_id}"),
        ("queues", "/ui/queues"),
        ("workers", "/ui/workers"),
        ("keys", "/ui/keys"),
        ("webhooks", "/ui/webhooks"),
        ("submit", "/ui/submit"),
    ]


async def _sign_in(client: httpx.AsyncClient) -> None:
    form = await client.get("/ui/signin")
    token = re.search(r'name="token" value="([^"]+)"', form.text)
    assert token is not None, form.text[:300]
    done = await client.post("/ui/signin", data={"token": token[1], "key": ADMIN, "next": "/ui"})
    assert done.status_code == 303, done.text[:300]
    assert "jqs_session" in client.cookies


def _durations(log: Path) -> list[float]:
    """The server's duration_ms of every GET of a dashboard page in its access log, in
    order (read once the server has stopped: its log is flushed then)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if '"http_request"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("method") == "GET" and entry.get("path", "").startswith("/ui"):
            found.append(float(entry["duration_ms"]))
    return found


async def dashboard(ctx: Context) -> None:
    """Every page's server time over a million finished jobs."""
    history_n = 100_000 if ctx.quick else HISTORY
    runs = 5 if ctx.quick else RUNS
    dsn = await ctx.server.fresh()
    began = time.monotonic()
    failed_id = await _add_history(dsn, history_n)
    print(f"   {history_n:,} finished jobs written in {time.monotonic() - began:.0f}s", flush=True)
    port = free_port()
    log = ctx.log("dashboard")
    proc = jqs(
        ["serve", "--no-worker"],
        {"DATABASE_URL": dsn, "PORT": str(port), "JQS_ADMIN_KEY": ADMIN, "JQS_LOG_LEVEL": "info"},
        log,
    )
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 3600))
    measured: dict[str, dict[str, float]] = {}
    asked = pages(failed_id, since)
    try:
        await wait_http(f"http://127.0.0.1:{port}/health")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            await _sign_in(client)
            for _, path in asked:
                # One request first: each connection plans a statement on its first run.
                for _ in range(runs + 1):
                    answer = await client.get(path)
                    assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    finally:
        proc.stop()
    # After the sign-in form's GET, each page's requests in the order they were made.
    durations = _durations(log)[1:]
    assert len(durations) == len(asked) * (runs + 1), len(durations)
    for n, (label, _) in enumerate(asked):
        times = durations[n * (runs + 1) + 1 : (n + 1) * (runs + 1)]
        measured[label] = {"median": statistics.median(times), "max": max(times)}
    ctx.extra["dashboard_pages"] = {"finished": history_n, "runs": runs, "ms": measured}
    for label, ms in measured.items():
        ctx.rows.append(
            Row(
                ctx.title(f"dashboard page {label}, {history_n:,} finished jobs (ms)"),
                ms["median"],
                BUDGET_MS,
                "ms",
                "the budget",
                f"<= {BUDGET_MS:g} ms",
                higher_is_better=False,
                met=ms["max"] <= BUDGET_MS,
                note=f"server time from the access log, median of {runs} (slowest "
                f"{ms['max']:.1f} ms)",
            )
        )
