"""The webhook outbox on PostgreSQL: deliveries are written by the trigger on job_events in
the statement (so the transaction) of each event, for the subscriptions that match and the
callbacks of final events; they go with their job; the dispatcher sends them through the
SSRF guard, which looks again at what the host resolves to at each attempt."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address

import asyncpg
import pytest

from jqs.models import EnqueueOptions, IdempotencyKey, NewJob
from jqs.netguard import DestinationPolicy
from jqs.netguard.policy import IPAddress
from jqs.outcome import Completed
from jqs.port import DeliveryClaim, DeliveryListing, Finish, NewKey, NewWebhook, PruneParams
from jqs.store import PostgresStore
from jqs.webhooks import signing
from jqs.webhooks.dispatcher import Dispatcher, DispatchSettings
from jqs.webhooks.schedule import RetrySchedule
from tests.support.jobs import claim, raw
from tests.support.receiver import Receiver
from tests.support.waiting import eventually


async def _deliveries(conn: asyncpg.Connection) -> list[tuple[str | None, str, int]]:
    rows = await conn.fetch(
        "SELECT webhook_id, event_type, job_id FROM webhook_deliveries ORDER BY id"
    )
    return [(r["webhook_id"], r["event_type"], r["job_id"]) for r in rows]


async def _hook(store: PostgresStore, url: str = "http://hooks.test/", **spec: object) -> str:
    spec.setdefault("events", ["job.enqueued", "job.started", "job.completed"])
    hook = await store.webhook_create(
        NewWebhook(
            id=f"wh_{len(await store.webhook_list()):012x}",
            url=url,
            secret=signing.new_secret(),
            **spec,
        )  # type: ignore[arg-type]
    )
    return hook.id


async def _run_one(
    store: PostgresStore, payload: dict[str, object], by: str | None = None, **options: object
) -> int:
    job = NewJob(raw(payload), EnqueueOptions(**options), created_by=by)  # type: ignore[arg-type]
    [inserted] = await store.insert([job])
    [job] = await claim(store)
    await store.finish([Finish(job.lease, Completed(raw({"ok": True})))])
    return inserted.id


async def test_without_subscriptions_or_callbacks_nothing_is_written(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    await _run_one(store, {"task": "a"})
    assert await _deliveries(conn) == []
    assert not await store.webhooks_armed()


async def test_each_event_of_a_matching_job_gets_a_delivery_in_its_statement(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    every = await _hook(store)
    only_b = await _hook(store, tasks=["b"], events=["job.completed"])
    other_queue = await _hook(store, queues=["elsewhere"], events=["job.completed"])
    assert await store.webhooks_armed()
    a = await _run_one(store, {"task": "a"})
    b = await _run_one(store, {"task": "b"})
    got = await _deliveries(conn)
    assert got == [
        (every, "job.enqueued", a),
        (every, "job.started", a),
        (every, "job.completed", a),
        (every, "job.enqueued", b),
        (every, "job.started", b),
        (every, "job.completed", b),
        (only_b, "job.completed", b),
    ]
    assert other_queue not in {hook for hook, _, _ in got}


async def test_no_delivery_without_its_committed_event(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    await _hook(store)
    tx = conn.transaction()
    await tx.start()
    job_id = await conn.fetchval("INSERT INTO jobs (payload) VALUES ('{}') RETURNING id")
    await conn.execute("INSERT INTO job_events (job_id, type) VALUES ($1, 'job.enqueued')", job_id)
    # Inside the transaction the delivery is there; rolled back, it is gone with the event.
    assert len(await _deliveries(conn)) == 1
    await tx.rollback()
    assert await _deliveries(conn) == []


async def test_a_callback_gets_only_the_final_event_and_goes_with_its_job(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    secret = signing.new_secret()
    await store.key_create(
        NewKey(
            id="key_000000000001",
            name="k",
            secret_hash="h",
            scopes=["jobs:submit"],
            webhook_secret=secret,
        )
    )
    job_id = await _run_one(
        store, {"task": "a"}, "key_000000000001", callback_url="http://hooks.test/cb"
    )
    job = await store.get(job_id)
    assert job.status == "completed"
    assert await _deliveries(conn) == [(None, "job.completed", job_id)]
    [due] = await store.deliveries_claim(DeliveryClaim(limit=10, lease_seconds=30))
    assert due.url == "http://hooks.test/cb"
    assert due.secrets == (secret,)
    assert due.job is not None
    assert due.job.id == job_id
    await conn.execute("UPDATE jobs SET finished_at = now() - interval '2 days'")
    assert await store.prune(PruneParams(older_than=3600)) == 1
    assert await _deliveries(conn) == []
    assert await conn.fetchval("SELECT count(*) FROM job_callbacks") == 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.mark.parametrize("resolves_to", ["127.0.0.2", "127.0.0.1"])
async def test_each_attempt_checks_where_the_host_resolves_now(
    store: PostgresStore, receiver: Receiver, resolves_to: str
) -> None:
    # The subscription was made while hooks.test resolved to an allowed address (127.0.0.2
    # here); by the attempt it may resolve elsewhere.
    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ip_address(resolves_to)]

    hook = await _hook(
        store, url=f"http://hooks.test:{receiver.port}/hook", events=["job.enqueued"]
    )
    policy = DestinationPolicy.parse("127.0.0.2/32")
    allowed = resolves_to == "127.0.0.2"
    if allowed:
        # 127.0.0.2 is loopback too: the receiver on 127.0.0.1 does not listen there.
        policy = DestinationPolicy.parse("127.0.0.2/32,127.0.0.1/32")

        async def resolver(host: str, port: int) -> list[IPAddress]:
            return [ip_address("127.0.0.1")]

    dispatcher = Dispatcher(
        store,
        policy,
        DispatchSettings(schedule=RetrySchedule.parse("0,60"), poll_interval=0.05),
        resolver=resolver,
    )
    await dispatcher.start()
    try:
        await store.insert([NewJob(raw({"task": "a"}))])
        dispatcher.wake()

        async def attempted() -> list[object]:
            [delivery] = await store.deliveries_list(DeliveryListing(hook))
            return list(delivery.attempts)

        [attempt] = await eventually(attempted)
    finally:
        await dispatcher.stop()
    if allowed:
        assert attempt.status_code == 200
        assert len(receiver.delivered()) == 1
    else:
        assert attempt.status_code is None
        assert attempt.error == "destination not allowed by JQS_HTTP_ALLOW policy"
        assert receiver.all() == []


async def test_every_insert_keeps_each_jobs_own_callback(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    def job(n: int, url: str | None) -> NewJob:
        return NewJob(raw({"n": n}), EnqueueOptions(callback_url=url, priority=n), "key_a")

    # Options that differ: one row each (job_insert_many); alike: job_insert_many_alike.
    mixed = await store.insert([job(1, "http://a.test/"), job(2, None), job(3, "http://c.test/")])
    alike = await store.insert([job(0, "http://d.test/"), job(0, "http://d.test/")])
    once, _ = await store.insert_once(job(4, "http://e.test/"), IdempotencyKey("k", "d"))
    rows = await conn.fetch("SELECT job_id, url, key_id FROM job_callbacks ORDER BY job_id")
    assert [(r["job_id"], r["url"], r["key_id"]) for r in rows] == [
        (mixed[0].id, "http://a.test/", "key_a"),
        (mixed[2].id, "http://c.test/", "key_a"),
        (alike[0].id, "http://d.test/", "key_a"),
        (alike[1].id, "http://d.test/", "key_a"),
        (once.id, "http://e.test/", "key_a"),
    ]
