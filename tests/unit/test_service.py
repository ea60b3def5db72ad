"""A loop service whose loop fails unexpectedly starts it again, and stops cleanly."""

from __future__ import annotations

import asyncio

import pytest

from jqs import service
from jqs.service import LoopService


class Flaky(LoopService):
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.runs = 0
        self.steady = asyncio.Event()

    async def _loop(self) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise RuntimeError(f"failure {self.runs}")
        self.steady.set()
        await asyncio.Event().wait()


async def test_a_failed_loop_is_started_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "RESTART_FIRST", 0.01)
    flaky = Flaky(failures=2)
    await flaky.start()
    try:
        await asyncio.wait_for(flaky.steady.wait(), 5)
        assert (flaky.runs, flaky.restarts) == (3, 2)
    finally:
        await flaky.stop()
    assert flaky._task is None


async def test_the_pause_between_restarts_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "RESTART_FIRST", 0.05)
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(service.asyncio, "sleep", sleep)
    flaky = Flaky(failures=3)
    await flaky.start()
    try:
        await asyncio.wait_for(flaky.steady.wait(), 5)
        assert slept == [0.05, 0.1, 0.2]
    finally:
        await flaky.stop()


async def test_a_loop_that_returns_is_not_started_again() -> None:
    class Once(LoopService):
        runs = 0

        async def _loop(self) -> None:
            self.runs += 1

    once = Once()
    await once.start()
    await asyncio.sleep(0.05)
    assert once.runs == 1
    assert once.restarts == 0
    await once.stop()
