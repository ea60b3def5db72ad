"""The dashboard's logic without a database: sessions, CSRF tokens, filters, the chart, and
its pages on the in-memory store (auth on and off)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from jqs.api.app import create_app
from jqs.api.state import ApiState
from jqs.auth.issue import KeySpec, issue_key
from jqs.auth.keyring import KeyRing
from jqs.auth.principal import Principal
from jqs.auth.scopes import Scope
from jqs.models import NewJob, Throughput
from jqs.port import FindParams, JobSearch, SearchParams
from jqs.testing import ManualClock, MemoryStore
from jqs.ui import session
from jqs.ui.chart import chart
from jqs.ui.filters import FilterError, Filters, contains
from tests.support.jobs import raw

ADMIN = "a" * 32
READER = Principal("key_reader", "reader", frozenset({Scope.JOBS_READ}))


def test_payload_filters_become_containment_objects() -> None:
    assert contains("user_id = 42") == b'{"user_id":42}'
    assert contains('user_id = 42 and region = "eu"') == b'{"user_id":42,"region":"eu"}'
    assert contains("customer.country = fr\nflag = true") == (
        b'{"customer":{"country":"fr"},"flag":true}'
    )
    assert contains('{"tags": ["a"]}') == b'{"tags":["a"]}'
    for bad in ("user_id", "= 3", "[1]", "{nope", "a = 1 and a.b = 2"):
        with pytest.raises(FilterError):
            contains(bad)


def test_filters_search_within_the_keys_reach() -> None:
    limited = Principal("k", "k", frozenset({Scope.JOBS_READ}), queues=frozenset({"mail"}))
    filters = Filters.of({"status": "failed", "since": "2030-01-02T03:04", "x": "ignored"})
    search = filters.search(limited)
    assert search.queues == frozenset({"mail"})
    assert search.since == datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    assert filters.windowed, "a time range reads the window"
    assert not Filters.of({"status": "failed", "task": "t"}).windowed, "indexed"
    assert Filters.of({"payload": "a = 1"}).windowed
    assert filters.query(before=5) == "status=failed&since=2030-01-02T03%3A04&before=5"
    with pytest.raises(FilterError):
        Filters.of({"status": "done"}).search(limited)
    with pytest.raises(FilterError):
        Filters.of({"until": "yesterday"}).search(limited)


async def test_a_session_names_its_key_is_signed_and_ends_with_it() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    ring = KeyRing(store, admin_key=ADMIN, clock=clock)
    issued = await issue_key(
        store, KeySpec(name="r", scopes=frozenset({Scope.JOBS_READ})), created_by=None
    )
    ring.add(issued.secret_hash, issued.principal)
    value = session.issue(issued.secret_hash, issued.principal)
    assert issued.secret not in value
    opened = session.open_session(value, ring)
    assert opened is not None
    assert opened.principal.id == issued.key.id
    assert opened.csrf_ok(opened.csrf)
    flipped = ("y" if opened.csrf[0] == "x" else "x") + opened.csrf[1:]
    assert not opened.csrf_ok(flipped)
    assert not opened.csrf_ok(None)
    key_id, expires, nonce, mac = value.split(".")
    assert session.open_session(f"{key_id}.{int(expires) + 9}.{nonce}.{mac}", ring) is None
    assert session.open_session(f"{key_id}.{expires}.{nonce}x.{mac}", ring) is None
    assert session.open_session("garbage", ring) is None
    later = int(expires) + 1
    assert session.open_session(value, ring, now=later) is None, "expired"
    other = session.issue(issued.secret_hash, issued.principal)
    assert session.open_session(other, ring).csrf != opened.csrf  # type: ignore[union-attr]
    ring.remove(issued.key.id)
    assert session.open_session(value, ring) is None, "revoked"


def test_the_chart_has_a_bar_per_minute() -> None:
    now = datetime(2030, 1, 1, 12, 30, 15, tzinfo=UTC)
    minute = now.replace(second=0) - timedelta(minutes=2)
    drawn = chart([Throughput(minute, 3, 1)], now, 60)
    assert len(drawn.bars) == 60
    assert drawn.peak == 4
    assert (drawn.completed, drawn.failed) == (3, 1)
    tall = drawn.bars[-3]
    assert tall.completed_height + tall.failed_height == pytest.approx(drawn.height - 4)
    assert drawn.bars[-1].completed_height == 0


async def _client(state: ApiState) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(state))
    return httpx.AsyncClient(transport=transport, base_url="http://jqs.test")


async def test_pages_need_a_session_and_its_scope() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    ring = KeyRing(store, admin_key=ADMIN, clock=clock)
    reader = await issue_key(
        store, KeySpec(name="r", scopes=frozenset({Scope.JOBS_READ})), created_by=None
    )
    ring.add(reader.secret_hash, reader.principal)
    async with await _client(ApiState(store=store, keyring=ring)) as client:
        first = await client.get("/ui/jobs")
        assert first.status_code == 303
        assert first.headers["location"] == "/ui/signin?next=%2Fui%2Fjobs"
        assert (await client.get("/ui/static/htmx.min.js")).status_code == 200
        refresh = await client.get("/ui/queues", headers={"HX-Request": "true"})
        assert refresh.headers["hx-redirect"] == "/ui/signin?next=%2Fui%2Fqueues"
        form = await client.get("/ui/signin")
        token = re.search(r'name="token" value="([^"]+)"', form.text)
        assert token is not None
        wrong = await client.post("/ui/signin", data={"token": token[1], "key": "nope"})
        assert "unknown" in wrong.headers["location"]
        form = await client.get("/ui/signin")
        token = re.search(r'name="token" value="([^"]+)"', form.text)
        assert token is not None
        signed = await client.post(
            "/ui/signin", data={"token": token[1], "key": reader.secret, "next": "/ui/jobs"}
        )
        assert signed.status_code == 303
        assert signed.headers["location"] == "/ui/jobs"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Secure" not in cookie, "plain HTTP"
        assert (await client.get("/ui/jobs")).status_code == 200
        assert (await client.get("/ui/keys")).status_code == 403
        assert (await client.get("/ui/submit")).status_code == 403
        # The Bearer API is not opened by the cookie.
        assert (await client.get("/jobs")).status_code == 401
        over_tls = await client.get("/ui/signin", headers={"X-Forwarded-Proto": "https"})
        assert "Secure" in over_tls.headers["set-cookie"]


async def test_with_authentication_off_the_pages_open_for_anyone() -> None:
    store = MemoryStore(ManualClock())
    async with await _client(ApiState(store=store, keyring=None)) as client:
        overview = await client.get("/ui")
        assert overview.status_code == 200
        assert "Throughput" in overview.text
        assert (await client.get("/ui/signin")).status_code == 303
        refused = await client.post("/ui/submit", data={"payload": "{}"})
        assert refused.status_code == 403, "no CSRF token"


async def test_bad_input_gets_a_page_never_a_500() -> None:
    store = MemoryStore(ManualClock())
    async with await _client(ApiState(store=store, keyring=None)) as client:
        page = await client.get("/ui/submit")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        csrf = token[1]
        huge = "9" * 30
        for path in (
            f"/ui/jobs?payload=a+%3D+1&top={huge}&before={huge}",
            f"/ui/jobs?before={huge}",
            "/ui/jobs?top=-5&queue=q",
            f"/ui/jobs/bulk?action=retry&top={huge}",
        ):
            assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/ui/jobs?payload=nonsense")).status_code == 422
        assert (await client.get("/ui/jobs?status=done")).status_code == 422
        assert (await client.get(f"/ui/jobs/{huge}")).status_code == 404
        assert (await client.get("/ui/jobs/0")).status_code == 404
        assert (await client.get("/ui/webhooks")).status_code == 200
        assert (await client.get("/ui/webhooks/wh_nope")).status_code == 404
        bad_queue = await client.post("/ui/queues/%20bad", data={"csrf": csrf, "op": "pause"})
        assert bad_queue.status_code == 404
        assert await store.queue_settings_list() == []
        limits = await client.post(
            "/ui/queues/q", data={"csrf": csrf, "op": "limits", "concurrency_limit": "-1"}
        )
        assert "q%3A%20concurrency_limit" in limits.headers["location"]
        key = await client.post("/ui/keys", data={"csrf": csrf, "name": "a\x01b"})
        assert key.status_code == 303
        assert await store.key_list() == []
        bad_json = await client.post("/ui/submit", data={"csrf": csrf, "payload": "[1]"})
        assert bad_json.status_code == 422
        assert "JSON object" in bad_json.text
        made = await client.post(
            "/ui/submit", data={"csrf": csrf, "payload": '{"task": "t"}', "queue": "q2"}
        )
        assert made.status_code == 303
        [job] = await store.job_search(SearchParams(JobSearch(), 0))
        assert job.queue == "q2"


async def test_bulk_actions_take_every_match_of_the_window_in_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jqs.ui import jobs as job_pages

    monkeypatch.setattr(job_pages, "BULK_BATCH", 3)
    monkeypatch.setattr(job_pages, "BULK_MAX", 7)
    store = MemoryStore(ManualClock())
    await store.insert([NewJob(raw({"task": "t", "n": n})) for n in range(9)])
    await store.insert([NewJob(raw({"task": "other"}))])
    woken: list[str] = []
    state = ApiState(store=store, keyring=None, on_enqueue=woken.append)
    async with await _client(state) as client:
        page = await client.get("/ui/jobs/bulk?action=cancel&task=t")
        assert "<strong>9</strong> jobs match" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        form = {"csrf": csrf[1], "action": "cancel", "task": "t", "floor": "0", "top": "11"}
        first = await client.post("/ui/jobs/bulk", data=form)
        assert "7%20jobs%20cancelled" in first.headers["location"]
        rest = first.headers["location"]
        assert rest.startswith("/ui/jobs/bulk?")
        page = await client.get(rest)
        assert "<strong>2</strong> jobs match" in page.text, "what the first press left"
        top = re.search(r'name="top" value="([^"]+)"', page.text)
        assert top is not None
        second = await client.post("/ui/jobs/bulk", data={**form, "top": top[1]})
        assert "2%20jobs%20cancelled" in second.headers["location"], "the rest"
        assert second.headers["location"].startswith("/ui/jobs?")
        statuses = [job.status.value for job in await store.find(FindParams(limit=20))]
        assert statuses == ["queued"] + ["cancelled"] * 9
        retried = await client.post("/ui/jobs/bulk", data={**form, "action": "retry"})
        assert "7%20jobs%20queued%20again" in retried.headers["location"]
        assert set(woken) == {"default"}, "the queues of the jobs queued again are woken"
        refused = await client.post("/ui/jobs/bulk", data={**form, "csrf": "forged"})
        assert refused.status_code == 403
