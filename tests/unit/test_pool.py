"""The worker pool on the in-memory store and a manual clock: time-driven behaviour (backoff,
leases, heartbeats, timeouts, cancellation, prefetch, shutdown) in milliseconds."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

from jqs import FailNow, RetryLater
from jqs.logging import configure_logging, get_logger
from jqs.maintenance.rescuer import Rescuer
from jqs.models import ClaimResult, Job, JobStatus
from jqs.outcome import cancelled_result
from jqs.port import ClaimParams, FindParams, RescueParams
from jqs.tasks.registry import TaskOptions, TaskRegistry, TaskSpec
from jqs.testing import ManualClock, MemoryStore
from jqs.worker import PoolSettings, WorkerPool
from jqs.worker.executor import RetryPolicy
from jqs.worker.prefetch import Prefetch
from tests.support.jobs import add, claim


class _NoJitter(random.Random):
    def random(self) -> float:
        return 0.0


class Harness:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.store = MemoryStore(self.clock)
        self.registry = TaskRegistry()

    def handle(self, name: str, fn: Callable[..., Any], **options: Any) -> None:
        self.registry.add(TaskSpec.of(name, fn, TaskOptions(**options)))

    def pool(self, **settings: Any) -> WorkerPool:
        prefetch = settings.pop("prefetch", None)
        settings.setdefault("poll_interval", 0.5)
        settings.setdefault("retry", RetryPolicy(backoff_base=1.0, backoff_max=60))
        return WorkerPool(
            self.store,
            self.registry,
            PoolSettings(**settings),
            clock=self.clock,
            rng=_NoJitter(),
            prefetch=prefetch,
        )

    @asynccontextmanager
    async def running(self, **settings: Any) -> AsyncIterator[WorkerPool]:
        pool = self.pool(**settings)
        await pool.start()
        try:
            yield pool
        finally:
            await self.stop(pool, 0)

    async def stop(self, pool: WorkerPool, drain: float) -> None:
        """Stop the pool while time passes (its drain deadline is on the manual clock)."""
        stopping = asyncio.ensure_future(pool.stop(drain))
        for _ in range(100):
            if stopping.done():
                break
            await self.clock.advance(drain / 10 + 0.01)
        await stopping

    async def job(self, job_id: int) -> Job:
        return await self.store.get(job_id)

    async def run_until(
        self, check: Callable[[], Any], *, step: float = 0.1, within: float = 600
    ) -> None:
        """Advance time in steps until `check()` (awaited) is true."""
        elapsed = 0.0
        while not await check():
            assert elapsed < within, f"not true after {within} s of (manual) time"
            await self.clock.advance(step)
            elapsed += step

    async def finished(self, job_id: int, **kw: Any) -> Job:
        async def done() -> bool:
            return (await self.job(job_id)).status.finished

        await self.run_until(done, **kw)
        return await self.job(job_id)


@pytest.fixture
def h() -> Harness:
    return Harness()


async def test_failures_back_off_exponentially_until_attempts_are_spent(h: Harness) -> None:
    starts: list[float] = []

    # Async: a sync handler runs in a thread, on real time, while the manual clock moves on.
    async def always(payload: dict[str, Any]) -> None:
        starts.append(h.clock.monotonic())
        raise ConnectionError(f"attempt {len(starts)} failed")

    h.handle("always", always)
    job = await add(h.store, {"task": "always"}, max_attempts=4)
    async with h.running(poll_interval=0.05):
        done = await h.finished(job.id, step=0.05)
    assert done.status is JobStatus.FAILED
    assert done.attempts == 4
    # No jitter: half of base * 2^(n-1) seconds, found by the next poll (0.05 s).
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    for gap, delay in zip(gaps, [0.5, 1.0, 2.0], strict=True):
        assert delay - 1e-6 <= gap <= delay + 0.05 + 1e-6, gaps
    assert [e["attempt"] for e in done.errors] == [1, 2, 3, 4]
    assert done.result["error"] == "attempt 4 failed"
    assert done.result["type"] == "ConnectionError"
    assert "Traceback" in done.result["traceback"]


async def test_retry_later_picks_its_delay_and_fail_now_stops_at_once(h: Harness) -> None:
    seen: list[float] = []

    async def later(payload: dict[str, Any]) -> str:
        seen.append(h.clock.monotonic())
        if len(seen) == 1:
            raise RetryLater(30, "busy upstream")
        return "ok"

    async def hopeless(payload: dict[str, Any]) -> None:
        raise FailNow("the input can never work")

    h.handle("later", later)
    h.handle("hopeless", hopeless)
    a = await add(h.store, {"task": "later"}, max_attempts=3)
    b = await add(h.store, {"task": "hopeless"}, max_attempts=5)
    async with h.running():
        done_a = await h.finished(a.id, step=1)
        done_b = await h.finished(b.id)
    assert done_a.status is JobStatus.COMPLETED
    assert 30 <= seen[1] - seen[0] <= 31
    assert done_a.errors[0]["error"] == "busy upstream"
    assert "traceback" not in done_a.errors[0]
    assert done_b.status is JobStatus.FAILED
    assert done_b.attempts == 1, "FailNow spends no more attempts"
    assert done_b.result["type"] == "FailNow"


async def test_handler_timeouts_fail_the_attempt(h: Harness) -> None:
    async def slow(payload: dict[str, Any]) -> None:
        await h.clock.sleep(3600)

    h.handle("slow", slow)
    h.handle("slow_by_task", slow, timeout=5)
    a = await add(h.store, {"task": "slow"}, max_attempts=2, timeout=10)
    b = await add(h.store, {"task": "slow_by_task"})
    async with h.running():
        done_a = await h.finished(a.id, step=1)
        done_b = await h.finished(b.id, step=1)
    assert done_a.status is JobStatus.FAILED
    assert [e["type"] for e in done_a.errors] == ["Timeout", "Timeout"]
    assert "timed out after 10s" in done_a.result["error"]
    assert done_b.result["type"] == "Timeout"
    assert "after 5s" in done_b.result["error"]


async def test_unknown_tasks_and_results_that_are_not_json_fail_at_once(h: Harness) -> None:
    async def not_json(payload: dict[str, Any]) -> object:
        return {"when": object()}

    h.handle("not_json", not_json)
    missing = await add(h.store, {"task": "missing"}, max_attempts=3)
    unnamed = await add(h.store, {"no_task": True}, max_attempts=3)
    bad = await add(h.store, {"task": "not_json"}, max_attempts=3)
    async with h.running():
        for job in (missing, unnamed, bad):
            await h.finished(job.id)
    done = [await h.job(job.id) for job in (missing, unnamed, bad)]
    assert [j.attempts for j in done] == [1, 1, 1]
    assert done[0].result["type"] == "UnknownTask"
    assert done[0].result["registered"] == ["not_json"]
    assert 'no "task" field' in done[1].result["error"]
    assert "not JSON" in done[2].result["error"]


async def test_heartbeats_keep_a_long_job_from_being_rescued(h: Harness) -> None:
    runs: list[int] = []

    async def long(payload: dict[str, Any]) -> str:
        runs.append(1)
        await h.clock.sleep(100)  # many lease lengths
        return "done"

    h.handle("long", long)
    job = await add(h.store, {"task": "long"}, max_attempts=3)
    rescuer = Rescuer(h.store, interval=1, clock=h.clock)
    await rescuer.start()
    try:
        async with h.running(lease_seconds=6):
            done = await h.finished(job.id, step=0.5)
    finally:
        await rescuer.stop()
    assert done.status is JobStatus.COMPLETED
    assert runs == [1]
    assert (done.attempts, done.errors) == (1, [])


async def test_the_job_of_a_vanished_worker_runs_again_once_its_lease_expires(
    h: Harness,
) -> None:
    h.handle("x", lambda payload: "second time")
    job = await add(h.store, {"task": "x"}, max_attempts=2)
    await claim(h.store, lease_seconds=30, worker_id="vanished")
    rescuer = Rescuer(h.store, interval=5, clock=h.clock)
    await rescuer.start()
    try:
        async with h.running():
            await h.clock.advance(29)
            assert (await h.job(job.id)).status is JobStatus.PROCESSING
            done = await h.finished(job.id, step=1)
    finally:
        await rescuer.stop()
    assert done.status is JobStatus.COMPLETED
    assert done.attempts == 2
    assert done.errors[0]["type"] == "LeaseExpired"
    assert done.errors[0]["worker"] == "vanished"


async def test_a_lost_lease_interrupts_the_stale_handler_and_writes_nothing(h: Harness) -> None:
    started = asyncio.Event()
    ended: list[str] = []

    async def long(payload: dict[str, Any]) -> None:
        started.set()
        try:
            await h.clock.sleep(3600)
        finally:
            ended.append("interrupted")

    h.handle("long", long)
    job = await add(h.store, {"task": "long"}, max_attempts=3)
    async with h.running(lease_seconds=30) as pool:
        await h.run_until(lambda: _true(started.is_set()))
        # The lease runs out under it (a stall), and another worker takes the job.
        later = h.clock.now() + timedelta(seconds=31)
        assert len(await h.store.rescue(RescueParams(now=later))) == 1
        [taken] = await claim(h.store, worker_id="other")
        assert taken.id == job.id
        await h.run_until(lambda: _true(pool.active == 0), step=0.25, within=2)
        now = await h.job(job.id)
    assert ended == ["interrupted"]
    assert now.status is JobStatus.PROCESSING, "the new owner's job was left alone"


async def _true(value: bool) -> bool:
    return value


async def test_cancelling_a_running_job_interrupts_it_within_a_second(h: Harness) -> None:
    started = asyncio.Event()

    async def long(payload: dict[str, Any]) -> None:
        started.set()
        await h.clock.sleep(3600)

    h.handle("long", long)
    job = await add(h.store, {"task": "long"}, max_attempts=3)
    async with h.running():
        await h.run_until(lambda: _true(started.is_set()))
        asked_at = h.clock.monotonic()
        change = await h.store.cancel(job.id, cancelled_result(0))
        assert change.job.status is JobStatus.PROCESSING
        done = await h.finished(job.id, step=0.1)
        took = h.clock.monotonic() - asked_at
    assert done.status is JobStatus.CANCELLED
    assert done.result["type"] == "Cancelled"
    assert took <= 1.1
    assert done.attempts == 1


class FixedPrefetch(Prefetch):
    """Claim this many jobs ahead whatever the measured rate (the policy is unit-tested)."""

    def __init__(self, ahead: int) -> None:
        super().__init__(ahead)
        self.ahead = ahead

    def target(self) -> int:
        return self.ahead


async def test_jobs_claimed_ahead_wait_for_a_slot_keep_their_lease_and_go_back_at_stop(
    h: Harness,
) -> None:
    gate = asyncio.Event()
    running = 0
    peak = 0

    async def held(payload: dict[str, Any]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await gate.wait()
        finally:
            running -= 1

    h.handle("held", held)
    for n in range(8):
        await add(h.store, {"task": "held", "n": n})
    pool = h.pool(concurrency=2, lease_seconds=3, prefetch=FixedPrefetch(3))
    await pool.start()

    async def statuses() -> dict[JobStatus, int]:
        return {info.settings.name: info.counts for info in await h.store.queue_infos()}["default"]

    # Two run, three more are claimed ahead and wait; the rest stay queued.
    await h.run_until(lambda: _count(statuses, JobStatus.PROCESSING, 5))
    assert running == 2
    await h.clock.advance(10)  # several leases: the waiting jobs' leases are renewed too
    expired = await h.store.rescue(RescueParams(now=h.clock.now()))
    assert expired == []
    assert peak == 2, "jobs claimed ahead never run beyond the concurrency"
    await h.stop(pool, 0.5)
    counts = await statuses()
    assert counts[JobStatus.QUEUED] == 8, "waiting and interrupted jobs are all back"
    assert all(job.attempts == 0 for job in await h.store.find(FindParams(limit=10)))


async def _count(read: Callable[[], Any], status: JobStatus, n: int) -> bool:
    return (await read())[status] == n


async def test_stop_drains_short_jobs_and_hands_back_long_ones(h: Harness) -> None:
    async def nap(payload: dict[str, Any]) -> str:
        await h.clock.sleep(float(payload["s"]))
        return "rested"

    h.handle("nap", nap)
    short = await add(h.store, {"task": "nap", "s": 1})
    long = await add(h.store, {"task": "nap", "s": 3600})
    pool = h.pool(concurrency=2)
    await pool.start()
    await h.clock.advance(0.1)
    assert pool.active == 2
    await h.stop(pool, 5)
    assert (await h.job(short.id)).status is JobStatus.COMPLETED
    back = await h.job(long.id)
    assert back.status is JobStatus.QUEUED
    assert back.attempts == 0, "a handed-back attempt is not counted"
    assert await h.store.workers() == [], "the worker said it is gone"


async def test_the_pool_never_runs_more_than_its_concurrency(h: Harness) -> None:
    running = 0
    peak = 0

    async def work(payload: dict[str, Any]) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await h.clock.sleep(1)
        running -= 1
        return int(payload["n"])

    h.handle("work", work)
    jobs = [await add(h.store, {"task": "work", "n": n}) for n in range(20)]
    async with h.running(concurrency=4):
        for job in jobs:
            done = await h.finished(job.id)
            assert done.result == done.payload["n"]
    assert peak == 4


class CountingStore(MemoryStore):
    """Counts the claims that come back empty."""

    empty_claims = 0

    async def claim(self, params: ClaimParams) -> ClaimResult:
        result = await super().claim(params)
        if not result.jobs:
            self.empty_claims += 1
        return result


async def test_a_freed_slot_claims_only_while_work_may_be_left(h: Harness) -> None:
    store = h.store = CountingStore(h.clock)

    async def ok(payload: dict[str, Any]) -> str:
        return "fine"

    h.handle("ok", ok)
    pool = h.pool(concurrency=4, poll_interval=3600)
    await pool.start()
    try:
        await h.clock.advance(0.01)
        assert store.empty_claims == 1  # the first claim
        # One job at a time, each announced: one claim each. A slot freeing after a claim
        # that found the queue empty sends no claim.
        for _ in range(5):
            job = await add(store, {"task": "ok"})
            pool.notify()
            await h.finished(job.id, step=0.01)
        await h.clock.advance(0.1)
        assert store.empty_claims == 1
        # A backlog larger than the pool: freed slots keep claiming until it is gone.
        jobs = [await add(store, {"task": "ok"}) for _ in range(30)]
        pool.notify()
        for job in jobs:
            await h.finished(job.id, step=0.01)
    finally:
        await h.stop(pool, 1)


async def test_a_running_pool_is_listed_as_a_worker_of_its_queues(h: Harness) -> None:
    async with h.running(queues=["mail", "default"], concurrency=3) as pool:
        await h.clock.advance(0.1)
        [worker] = await h.store.workers()
        assert worker.id == pool.worker_id
        assert worker.queues == ["mail", "default"]
        assert worker.concurrency == 3
        infos = {info.settings.name: info.workers for info in await h.store.queue_infos()}
        assert infos == {"mail": [pool.worker_id], "default": [pool.worker_id]}
    assert await h.store.workers() == []


def test_backoff_doubles_up_to_its_cap_with_half_of_each_step_random() -> None:
    from jqs.worker.backoff import backoff_delay

    low, high = _NoJitter(), _AllJitter()
    assert [backoff_delay(n, base=2, cap=60, rng=low) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert [backoff_delay(n, base=2, cap=60, rng=high) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert backoff_delay(30, base=2, cap=60, rng=high) == 60
    assert backoff_delay(30, base=2, cap=60, rng=low) == 30


class _AllJitter(random.Random):
    def random(self) -> float:
        return 1.0


async def test_a_drain_of_zero_seconds_hands_running_jobs_back_at_once(h: Harness) -> None:
    async def forever(payload: dict[str, Any]) -> None:
        await h.clock.sleep(10**6)

    h.handle("forever", forever)
    job = await add(h.store, {"task": "forever"}, max_attempts=3)
    pool = h.pool()
    await pool.start()
    await h.clock.advance(0.1)
    assert pool.active == 1
    stopping = asyncio.ensure_future(pool.stop(0))
    await h.clock.advance(0.01)
    await asyncio.wait_for(stopping, 1)
    back = await h.job(job.id)
    assert (back.status, back.attempts) == (JobStatus.QUEUED, 0)


async def test_a_handlers_log_lines_name_its_job_and_worker(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", cache=False)  # after capsys swapped stdout
    try:

        async def chatty(payload: dict[str, Any]) -> None:
            get_logger("app.handler").warning("resizing", size=payload["size"])

        h.handle("chatty", chatty)
        first = await add(h.store, {"task": "chatty", "size": 1}, queue="media")
        second = await add(h.store, {"task": "chatty", "size": 2}, queue="media")
        async with h.running(queues=["media"]) as pool:
            await h.finished(first.id)
            await h.finished(second.id)
        out = capsys.readouterr().out
    finally:
        configure_logging("warning", cache=False)
    lines = [json.loads(line) for line in out.splitlines() if '"resizing"' in line]
    assert sorted((line["size"], line["job_id"]) for line in lines) == [
        (1, first.id),
        (2, second.id),
    ]
    for line in lines:
        assert (line["task"], line["queue"], line["attempt"]) == ("chatty", "media", 1)
        assert line["worker"] == pool.worker_id
