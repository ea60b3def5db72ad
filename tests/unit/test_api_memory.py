"""The HTTP API on the in-memory store: what a client is told about who serves its job."""

from __future__ import annotations

from jqs.api.serving import ServedQueues
from jqs.port import WorkerBeat
from jqs.testing import ManualClock, MemoryStore
from tests.support.http import api_client


async def test_a_job_in_a_queue_nobody_serves_says_it_waits_for_a_worker() -> None:
    store = MemoryStore(ManualClock())
    served = ServedQueues(store, local=["default"])
    await served.refresh()
    async with api_client(store, served=served) as client:
        unserved = (await client.post("/jobs?queue=emails", json={"task": "send"})).json()
        local = (await client.post("/jobs", json={"task": "send"})).json()
        assert unserved["waiting_for_worker"] is True
        assert local["waiting_for_worker"] is False
        fetched = (await client.get(f"/jobs/{unserved['id']}")).json()
        assert fetched["waiting_for_worker"] is True
        queues = {q["name"]: q for q in (await client.get("/queues")).json()}
        assert queues["emails"]["workers"] == []

        await store.worker_beat(WorkerBeat("mailer-1", "host", ["emails"], "1.0", 4))
        await served.refresh()
        fetched = (await client.get(f"/jobs/{unserved['id']}")).json()
        assert fetched["waiting_for_worker"] is False
        listed = (await client.get("/jobs")).json()
        assert [job["waiting_for_worker"] for job in listed] == [False, False]
        queues = {q["name"]: q for q in (await client.get("/queues")).json()}
        assert queues["emails"]["workers"] == ["mailer-1"]
        batch = await client.post(
            "/jobs/batch", json={"jobs": [{"payload": {"task": "x"}, "queue": "nobody"}]}
        )
        assert batch.json()[0]["waiting_for_worker"] is True


async def test_before_the_first_look_nothing_is_said_to_wait() -> None:
    store = MemoryStore(ManualClock())
    async with api_client(store, served=ServedQueues(store)) as client:
        job = (await client.post("/jobs?queue=emails", json={"task": "send"})).json()
    assert job["waiting_for_worker"] is False
