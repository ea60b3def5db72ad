"""ClaimHub: waiting claims wake on signals, one per group, and never poll each on its own."""

from __future__ import annotations

import asyncio

from jqs.models import ClaimResult, EnqueueOptions, NewJob
from jqs.port import ClaimParams
from jqs.remote.hub import ClaimAsk, ClaimHub
from jqs.store.memory import MemoryStore
from tests.support.jobs import raw


class CountingStore(MemoryStore):
    """A memory store that counts claim statements, and how many run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0
        self.running = 0
        self.most_at_once = 0

    async def claim(self, params: ClaimParams) -> ClaimResult:
        self.claims += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(0.01)
            return await super().claim(params)
        finally:
            self.running -= 1


def ask(queue: str = "default", **fields: object) -> ClaimAsk:
    values: dict[str, object] = {
        "worker_id": "w",
        "queues": (queue,),
        "limit": 1,
        "lease_seconds": 30.0,
        "wait": 30.0,
    }
    return ClaimAsk(**{**values, **fields})  # type: ignore[arg-type]


async def add(store: MemoryStore, queue: str = "default") -> None:
    await store.insert([NewJob(raw({"task": "x"}), EnqueueOptions(queue=queue))])


async def settle(hub: ClaimHub, store: CountingStore, waiting: int) -> None:
    """Until `waiting` claims wait, each having looked once."""
    for _ in range(500):
        if hub.waiting == waiting and store.claims >= waiting and store.running == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{hub.waiting} claims waiting, not {waiting}")


async def test_a_signal_wakes_one_waiting_claim_of_the_queue_not_all() -> None:
    store = CountingStore()
    hub = ClaimHub(store, poll_interval=3600)  # no tick during the test
    # Two asked for, one found: the batch is not full, so nobody else is sent to look.
    claims = [asyncio.create_task(hub.claim(ask(limit=2))) for _ in range(20)]
    others = [asyncio.create_task(hub.claim(ask("other"))) for _ in range(5)]
    await settle(hub, store, 25)
    assert store.claims == 25, "each claim looked once when it came"
    await add(store)
    hub.notify("default")
    done, _ = await asyncio.wait(claims, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1
    [first] = done
    assert len(first.result()) == 1
    await asyncio.sleep(0.2)
    assert store.claims == 26, "one claim for one signal, none for the other queue"
    hub.close()
    rest = await asyncio.gather(*claims, *others)
    assert sum(len(jobs) for jobs in rest) == 1


async def test_a_full_batch_wakes_the_next_claim_of_its_group() -> None:
    store = CountingStore()
    hub = ClaimHub(store, poll_interval=3600)
    claims = [asyncio.create_task(hub.claim(ask())) for _ in range(3)]
    await settle(hub, store, 3)
    for _ in range(3):
        await add(store)
    hub.notify("default")
    got = await asyncio.wait_for(asyncio.gather(*claims), 5)
    assert sorted(len(jobs) for jobs in got) == [1, 1, 1]


async def test_the_tick_finds_jobs_that_came_due_without_a_signal() -> None:
    store = CountingStore()
    hub = ClaimHub(store, poll_interval=0.1)
    await hub.start()
    try:
        waiting = asyncio.create_task(hub.claim(ask()))
        await settle(hub, store, 1)
        await add(store)  # no notify
        assert len(await asyncio.wait_for(waiting, 5)) == 1
    finally:
        await hub.stop()


async def test_claim_statements_at_once_are_bounded() -> None:
    store = CountingStore()
    hub = ClaimHub(store, poll_interval=3600, max_claims=2)
    claims = [asyncio.create_task(hub.claim(ask(wait=0))) for _ in range(10)]
    assert await asyncio.gather(*claims) == [[]] * 10
    assert store.most_at_once == 2


async def test_a_closed_hub_answers_empty_at_once() -> None:
    store = CountingStore()
    hub = ClaimHub(store, poll_interval=3600)
    await add(store)
    hub.close()
    assert await hub.claim(ask()) == []
    assert store.claims == 0


async def test_a_claim_whose_asker_left_ends_at_once_and_takes_no_job() -> None:
    store = CountingStore()
    hub = ClaimHub(store, poll_interval=3600)
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    leaving = asyncio.create_task(hub.claim(ask(), gone=gone))
    await settle(hub, store, 1)
    gone.set_result(None)
    assert await asyncio.wait_for(leaving, 5) == []
    assert hub.waiting == 0, "it left its group"
    assert store.claims == 1, "it did not look again on its way out"
    assert await hub.claim(ask(wait=0), gone=gone) == [], "a claim asked by one gone is empty"


async def test_a_signal_taken_by_a_claim_whose_asker_left_goes_to_the_next() -> None:
    store = CountingStore()
    hub = ClaimHub(store, poll_interval=3600)
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    first = asyncio.create_task(hub.claim(ask(), gone=gone))  # the oldest: signals go to it
    await settle(hub, store, 1)
    second = asyncio.create_task(hub.claim(ask()))
    await settle(hub, store, 2)
    await add(store)
    hub.notify("default")  # wakes the first claim...
    gone.set_result(None)  # ...whose asker leaves before it runs
    assert await asyncio.wait_for(first, 5) == []
    assert len(await asyncio.wait_for(second, 5)) == 1, "the job's signal was passed on"
