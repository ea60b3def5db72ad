"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a real
`jqs serve` and PostgreSQL: sign in, filter, open a job, retry a failed one, cancel every
match, pause a queue, and a read-only key that is offered no action and refused one.

Set JQS_UI_SCREENSHOTS=docs/ui to write the pages' screenshots there (the README's)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import StartJqs
from tests.support.browser import chromium

pytest.importorskip("playwright")
from playwright.async_api import Browser, Page, async_playwright, expect

ADMIN = "test-admin-key-0123456789abcdefghijkl"
WAIT_MS = 30_000  # a loaded machine may be slow; every wait is for a state, never a time


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    path, why = await asyncio.to_thread(chromium)
    if path is None:
        pytest.skip(why)
    async with async_playwright() as driver:
        # --no-sandbox: the tests may run as root, where Chromium's sandbox refuses to start.
        launched = await driver.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield launched
        await launched.close()


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def _until(check: Callable[[], Awaitable[Any]], what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("JQS_UI_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def _sign_in(page: Page, base: str, key: str) -> None:
    await page.goto(f"{base}/ui")
    await expect(page).to_have_url(f"{base}/ui/signin?next=%2Fui")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Throughput")).to_be_visible()


async def test_dashboard_in_chromium(
    browser: Browser, dsn: str, start_jqs: StartJqs, tmp_path: Path
) -> None:
    expect.set_options(timeout=WAIT_MS)
    # Webhooks may go to loopback here: a closed port, whose deliveries fail and wait.
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN, JQS_HTTP_ALLOW="127.0.0.1")
    await asyncio.to_thread(proc.wait_for, "api_listening")
    base = proc.url
    shots = _shots(tmp_path)
    api = httpx.AsyncClient(base_url=base, timeout=30, headers=_auth(ADMIN))

    async def status(job_id: int) -> Any:
        return (await api.get(f"/jobs/{job_id}")).json()

    async def queues() -> dict[str, Any]:
        return {q["name"]: q for q in (await api.get("/queues")).json()}

    made = await api.post("/keys", json={"name": "viewer", "scopes": ["jobs:read"]})
    reader = made.json()
    assert (await api.patch("/queues/held", json={"paused": True})).status_code == 200
    hook = await api.post(
        "/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["job.completed"]}
    )
    assert hook.status_code == 201, hook.text
    ids = {}
    for user in (41, 42, 43):
        job = await api.post("/jobs", json={"task": "sleep", "seconds": 0, "user_id": user})
        ids[user] = job.json()["id"]
    failing = await api.post("/jobs?max_attempts=1", json={"task": "boom", "message": "kaput"})
    failed_id = failing.json()["id"]
    held = [
        (await api.post("/jobs?queue=held", json={"task": "sleep", "batch": "b1"})).json()["id"]
        for _ in range(5)
    ]

    async def has_failed() -> bool:
        return bool((await status(failed_id))["status"] == "failed")

    async def all_done() -> bool:
        return all([(await status(ids[u]))["status"] == "completed" for u in ids])

    await _until(has_failed, "a failed job")
    await _until(all_done, "the jobs to complete")

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    # Console errors include Content-Security-Policy violations (htmx must work under it).
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    await _sign_in(page, base, ADMIN)
    cookie = next(c for c in await context.cookies() if c["name"] == "jqs_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert ADMIN not in cookie["value"]
    await expect(page.locator("svg.chart")).to_be_visible()
    await page.screenshot(path=shots / "overview.png", full_page=True)
    # The figures refresh in place: htmx asks for the page again within seconds.
    async with page.expect_request(lambda r: r.headers.get("hx-request") == "true"):
        pass
    huge = "9" * 30
    answer = await page.goto(f"{base}/ui/jobs?payload=a+%3D+1&top={huge}&before={huge}")
    assert answer is not None
    assert answer.status == 200

    # Filter by payload content: one job has user_id 42.
    await page.get_by_role("link", name="Jobs", exact=True).click()
    await page.get_by_label("Payload").fill("user_id = 42")
    await page.get_by_role("button", name="Search").click()
    rows = page.locator("table.jobs tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text(str(ids[42]))
    await expect(page.locator("#reach")).to_contain_text("most recent job ids")
    await page.screenshot(path=shots / "jobs.png", full_page=True)

    # Open it.
    await rows.first.get_by_role("link", name=str(ids[42])).click()
    await expect(page.get_by_role("heading", name=f"Job {ids[42]}")).to_be_visible()
    await expect(page.locator("pre").first).to_contain_text('"user_id": 42')
    await expect(page.locator("ol.timeline")).to_contain_text("job.completed")

    # Retry the failed one: its traceback is shown; it runs (and fails) again.
    await page.goto(f"{base}/ui/jobs/{failed_id}")
    await expect(page.locator("pre.traceback")).to_contain_text("ValueError: kaput")
    await page.screenshot(path=shots / "job.png", full_page=True)
    await page.get_by_role("button", name="Retry").click()
    await expect(page.locator(".flash")).to_contain_text(f"job {failed_id} queued again")

    async def ran_again() -> bool:
        return len((await status(failed_id))["errors"]) == 2

    await _until(ran_again, "the retry's run")

    # Cancel every job of the paused queue: the count first, then the action.
    await page.goto(f"{base}/ui/jobs?queue=held")
    await expect(page.locator("table.jobs tbody tr")).to_have_count(5)
    await page.get_by_role("link", name="Cancel all matching…").click()
    await expect(page.locator("#bulk-count")).to_contain_text("5 jobs match")
    await page.screenshot(path=shots / "bulk.png", full_page=True)
    await page.get_by_role("button", name="Cancel 5 jobs").click()
    await expect(page.locator(".flash")).to_contain_text("5 jobs cancelled")
    assert {(await status(job))["status"] for job in held} == {"cancelled"}

    # Pause a queue.
    await page.goto(f"{base}/ui/queues")
    editor = page.locator("details.queue-edit[data-queue='default']")
    await editor.locator("summary").click()
    await editor.get_by_role("button", name="Pause").click()
    await expect(page.locator(".flash")).to_contain_text("default: paused")
    assert (await queues())["default"]["paused"] is True
    await page.screenshot(path=shots / "queues.png", full_page=True)

    # Webhooks: the subscription, and its deliveries (the jobs that completed).
    await page.goto(f"{base}/ui/webhooks")
    await page.get_by_role("link", name=hook.json()["id"]).click()
    await expect(page.get_by_role("heading", name="Latest deliveries")).to_be_visible()
    await expect(page.locator("table").first).to_contain_text("job.completed")
    await page.screenshot(path=shots / "webhook.png", full_page=True)

    for name in ("workers", "keys", "submit", "webhooks"):
        await page.goto(f"{base}/ui/{name}")
        await page.screenshot(path=shots / f"{name}.png", full_page=True)
    assert problems == []

    # A phone's width: nothing wider than the screen; and the dark theme.
    phone = await browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    await phone.add_cookies([cookie])  # type: ignore[list-item]
    small = await phone.new_page()
    small.set_default_timeout(WAIT_MS)
    await small.goto(f"{base}/ui")
    await expect(small.get_by_role("heading", name="Throughput")).to_be_visible()
    assert await small.evaluate("document.documentElement.scrollWidth") <= 390
    background = await small.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 21, 27)", background
    await small.screenshot(path=shots / "overview-phone-dark.png", full_page=True)
    await phone.close()

    # A read-only key sees no action, and is refused one anyway.
    viewer = await browser.new_context()
    seen = await viewer.new_page()
    seen.set_default_timeout(WAIT_MS)
    await _sign_in(seen, base, reader["secret"])
    await seen.goto(f"{base}/ui/jobs/{ids[41]}")
    await expect(seen.get_by_role("heading", name=f"Job {ids[41]}")).to_be_visible()
    assert await seen.locator("form[action$='/retry'], form[action$='/cancel']").count() == 0
    await seen.goto(f"{base}/ui/jobs")
    await expect(seen.locator("table.jobs")).to_be_visible()
    assert await seen.get_by_role("link", name="Cancel all matching…").count() == 0
    await seen.goto(f"{base}/ui/queues")
    await expect(seen.locator("table.queues")).to_contain_text("default")
    assert await seen.locator("details.queue-edit").count() == 0
    assert await seen.get_by_role("link", name="Keys").count() == 0
    assert await seen.get_by_role("link", name="Webhooks").count() == 0
    csrf = await seen.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    refused = await seen.request.post(
        f"{base}/ui/jobs/{failed_id}/retry", form={"csrf": csrf}, max_redirects=0
    )
    assert refused.status == 403
    assert "lacks the scope jobs:manage" in await refused.text()
    resumed = await seen.request.post(
        f"{base}/ui/queues/default", form={"csrf": csrf, "op": "resume"}, max_redirects=0
    )
    assert resumed.status == 403
    assert (await queues())["default"]["paused"] is True
    await viewer.close()
    # Each page's access log line names the session's key (never its secret).
    seen_lines = [e for e in proc.events("http_request") if e["path"] == f"/ui/jobs/{ids[41]}"]
    assert {e.get("key_id") for e in seen_lines} == {reader["id"]}
    assert all(ADMIN not in line and reader["secret"] not in line for line in proc.raw)
    await context.close()
    await api.aclose()
