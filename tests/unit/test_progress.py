"""Progress reports: their checks, and the per-job throttle of the worker's writer, on the
in-memory store and a manual clock (no sleeping on the wall clock)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from jqs import current_job
from jqs.errors import DatabaseUnavailable
from jqs.models import ClaimedJob, EventType, JobStatus, Lease, Progress
from jqs.outcome import Completed
from jqs.port import Finish, JobEventsRead
from jqs.tasks.context import JobContext, _current, set_current_job
from jqs.tasks.progress import MAX_DATA_BYTES, MAX_MESSAGE_CHARS, make_progress
from jqs.tasks.registry import TaskRegistry
from jqs.testing import ManualClock, MemoryStore
from jqs.worker import PoolSettings, WorkerPool
from jqs.worker.progress import ProgressWriter
from tests.support.jobs import add, claim, raw

# The checks


@pytest.mark.parametrize("value", [0, 0.0, 0.4, 1, 1.0])
def test_progress_from_0_to_1_is_taken(value: float) -> None:
    assert make_progress(value, None, None) == Progress(float(value))


@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan"), float("inf"), 40])
def test_progress_outside_0_to_1_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match="progress must be a number from 0 to 1"):
        make_progress(value, None, None)


@pytest.mark.parametrize("value", ["0.4", None, True])
def test_progress_that_is_not_a_number_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="progress must be a number from 0 to 1"):
        make_progress(value, None, None)


def test_a_message_is_bounded() -> None:
    assert make_progress(0.5, "x" * MAX_MESSAGE_CHARS, None).message == "x" * MAX_MESSAGE_CHARS
    with pytest.raises(ValueError, match="at most 1000 are kept"):
        make_progress(0.5, "x" * (MAX_MESSAGE_CHARS + 1), None)
    with pytest.raises(ValueError, match="message must be a string"):
        make_progress(0.5, 5, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL"):
        make_progress(0.5, "a\x00b", None)


def test_data_is_a_bounded_json_object() -> None:
    fits = {"s": "x" * (MAX_DATA_BYTES - len('{"s":""}'))}
    assert make_progress(0.5, None, fits).data == fits
    with pytest.raises(ValueError, match="at most 8192 are kept"):
        make_progress(0.5, None, {"s": "x" * MAX_DATA_BYTES})
    with pytest.raises(ValueError, match="must be a JSON object"):
        make_progress(0.5, None, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="data must be JSON"):
        make_progress(0.5, None, {"when": object()})
    with pytest.raises(ValueError, match="cannot be stored"):
        make_progress(0.5, None, {"a": "\x00"})


def test_a_report_holds_a_copy_of_its_data() -> None:
    data: dict[str, Any] = {"done": [1]}
    report = make_progress(0.5, None, data)
    data["done"].append(2)
    assert report.data == {"done": [1]}


def test_a_bad_report_raises_even_where_reports_go_nowhere() -> None:
    ctx = JobContext(1, "t", "default", 1)
    ctx.progress(0.5, "fine")  # no reporter: checked, then dropped
    with pytest.raises(ValueError, match="from 0 to 1"):
        ctx.progress(2)


# The throttle


class CountingStore(MemoryStore):
    """Counts progress writes; can be made to fail them, or hold them."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.writes: list[tuple[int, float]] = []
        self.fail = False
        self.gate: asyncio.Event | None = None
        self.in_flight = 0
        self.most_in_flight = 0

    async def progress(self, lease: Lease, report: Progress) -> bool:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail:
                raise DatabaseUnavailable("the database is away")
            self.writes.append((lease.job_id, report.progress))
            return await super().progress(lease, report)
        finally:
            self.in_flight -= 1


class Rig:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.store = CountingStore(self.clock)
        self.writer = ProgressWriter(self.store, clock=self.clock, interval=0.25)

    async def running_job(self) -> ClaimedJob:
        await add(self.store, {"task": "t"})
        [job] = await claim(self.store, limit=1)
        return job

    async def progress_events(self, job_id: int) -> list[float]:
        events = await self.store.events_of_job(JobEventsRead(job_id))
        return [e.data["progress"] for e in events if e.type is EventType.PROGRESS and e.data]


@pytest.fixture
def rig() -> Rig:
    return Rig()


async def test_the_first_report_is_written_at_once_and_later_ones_wait_their_turn(
    rig: Rig,
) -> None:
    job = await rig.running_job()
    sink = rig.writer.open(job)
    sink.report(Progress(0.1))
    await rig.clock.advance(0)
    assert rig.store.writes == [(job.id, 0.1)]
    sink.report(Progress(0.2))
    await rig.clock.advance(0.1)
    sink.report(Progress(0.3))
    await rig.clock.advance(0.1)
    assert rig.store.writes == [(job.id, 0.1)], "within the interval nothing more is written"
    await rig.clock.advance(0.05)
    assert rig.store.writes == [(job.id, 0.1), (job.id, 0.3)], "the latest wins"
    shown = (await rig.store.get(job.id)).progress
    assert shown is not None
    assert shown["progress"] == 0.3
    assert await rig.progress_events(job.id) == [0.1, 0.3]


async def test_a_report_after_a_quiet_spell_is_written_at_once(rig: Rig) -> None:
    job = await rig.running_job()
    sink = rig.writer.open(job)
    sink.report(Progress(0.1))
    await rig.clock.advance(1)
    sink.report(Progress(0.9))
    await rig.clock.advance(0)
    assert rig.store.writes == [(job.id, 0.1), (job.id, 0.9)]


async def test_many_reports_are_written_at_most_once_per_interval(rig: Rig) -> None:
    job = await rig.running_job()
    sink = rig.writer.open(job)
    for step in range(100):  # one report every 10 ms for one second
        sink.report(Progress(step / 100))
        await rig.clock.advance(0.01)
    await rig.clock.advance(0.25)
    assert 4 <= len(rig.store.writes) <= 5, rig.store.writes
    assert rig.store.writes[-1] == (job.id, 0.99), "the last report is written in the end"


async def test_each_job_has_its_own_turn(rig: Rig) -> None:
    one, two = await rig.running_job(), await rig.running_job()
    first, second = rig.writer.open(one), rig.writer.open(two)
    first.report(Progress(0.1))
    second.report(Progress(0.2))
    await rig.clock.advance(0)
    assert sorted(rig.store.writes) == [(one.id, 0.1), (two.id, 0.2)]


async def test_a_report_waiting_when_the_attempt_ends_is_dropped(rig: Rig) -> None:
    job = await rig.running_job()
    sink = rig.writer.open(job)
    sink.report(Progress(0.1))
    await rig.clock.advance(0)
    sink.report(Progress(0.2))
    sink.close()
    sink.report(Progress(0.3))
    await rig.clock.advance(1)
    assert rig.store.writes == [(job.id, 0.1)]
    await rig.writer.idle()


async def test_a_write_under_way_when_the_attempt_ends_finishes(rig: Rig) -> None:
    job = await rig.running_job()
    sink = rig.writer.open(job)
    rig.store.gate = asyncio.Event()
    sink.report(Progress(0.1))
    await rig.clock.advance(0)
    sink.close()
    rig.store.gate.set()
    await rig.writer.idle()
    assert rig.store.writes == [(job.id, 0.1)]


async def test_a_lost_lease_makes_reports_no_ops(rig: Rig) -> None:
    job = await rig.running_job()
    sink = rig.writer.open(job)
    await rig.store.finish([Finish(job.lease, Completed(raw(None)))])  # the lease is gone
    sink.report(Progress(0.1))
    await rig.clock.advance(0)
    assert rig.store.writes == [(job.id, 0.1)], "tried once: the store said no"
    sink.report(Progress(0.2))
    await rig.clock.advance(1)
    assert rig.store.writes == [(job.id, 0.1)], "and never again"
    assert await rig.progress_events(job.id) == []
    assert (await rig.store.get(job.id)).progress is None


async def test_a_failed_write_is_dropped_and_the_next_report_tries_again(rig: Rig) -> None:
    job = await rig.running_job()
    sink = rig.writer.open(job)
    rig.store.fail = True
    sink.report(Progress(0.1))
    await rig.clock.advance(0)
    rig.store.fail = False
    await rig.clock.advance(1)
    assert rig.store.writes == [], "the failed report is not tried again"
    sink.report(Progress(0.2))
    await rig.clock.advance(0)
    assert rig.store.writes == [(job.id, 0.2)]


async def test_a_pool_writes_few_reports_at_once(rig: Rig) -> None:
    jobs = [await rig.running_job() for _ in range(5)]
    writer = ProgressWriter(rig.store, clock=rig.clock, interval=0.25, max_writes=2)
    rig.store.gate = asyncio.Event()
    for job in jobs:
        writer.open(job).report(Progress(0.5))
    await rig.clock.advance(0)
    assert rig.store.in_flight == 2
    rig.store.gate.set()
    await writer.idle()
    assert rig.store.most_in_flight == 2
    assert sorted(job_id for job_id, _ in rig.store.writes) == [job.id for job in jobs]


async def test_reports_from_a_handler_thread_reach_the_store(rig: Rig) -> None:
    job = await rig.running_job()
    sink = rig.writer.open(job)
    thread = threading.Thread(target=sink.report, args=(Progress(0.7),))
    thread.start()
    await asyncio.to_thread(thread.join)
    await rig.clock.advance(0)
    assert rig.store.writes == [(job.id, 0.7)]


# In the pool


async def test_a_handler_reports_through_current_job_and_the_job_shows_it(rig: Rig) -> None:
    resume, finish = asyncio.Event(), asyncio.Event()
    reported = asyncio.Event()

    async def resize(payload: dict[str, Any]) -> str:
        ctx = current_job()
        for done in (1, 2, 3):
            ctx.progress(done / 10, f"resized {done} of 10", data={"done": done})
        reported.set()
        await resume.wait()
        ctx.progress(0.9, "resized 9 of 10")
        await finish.wait()
        ctx.progress(1.0, "resized 10 of 10")  # still unwritten as it returns: dropped
        return "ok"

    registry = TaskRegistry()
    registry.register("resize", resize)
    job = await add(rig.store, {"task": "resize"})
    pool = WorkerPool(rig.store, registry, PoolSettings(poll_interval=0.05), clock=rig.clock)
    await pool.start()
    try:
        for _ in range(100):
            if reported.is_set():
                break
            await rig.clock.advance(0.05)
        assert reported.is_set()
        await rig.clock.advance(0.3)
        running = await rig.store.get(job.id)
        assert running.status is JobStatus.PROCESSING
        assert running.progress is not None
        assert (running.progress["progress"], running.progress["data"]) == (0.3, {"done": 3})
        resume.set()
        await rig.clock.advance(0)
        shown = (await rig.store.get(job.id)).progress
        assert shown is not None
        assert shown["message"] == "resized 9 of 10", "after a pause: written at once"
        finish.set()
        for _ in range(100):
            if (await rig.store.get(job.id)).status.finished:
                break
            await rig.clock.advance(0.05)
    finally:
        await pool.stop(0)
    done = await rig.store.get(job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.progress is None
    # The three quick reports came before the job's writer first ran: only the latest went.
    assert await rig.progress_events(job.id) == [0.3, 0.9]


async def test_current_job_outside_a_handler_says_so() -> None:
    with pytest.raises(RuntimeError, match="only available inside a task handler"):
        current_job()
    token = set_current_job(JobContext(1, "t", "default", 1))
    try:
        current_job().progress(0.5)  # a context without a worker's writer: checked, dropped
    finally:
        _current.reset(token)
    with pytest.raises(RuntimeError):
        current_job()
