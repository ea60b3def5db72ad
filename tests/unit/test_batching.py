"""The Batcher: concurrent single calls become few batches, without a timer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from jqs.batching import Batcher


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def flush(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if any(item < 0 for item in items):
            raise ValueError("negative")
        return [item * 10 for item in items]


async def test_an_idle_batcher_writes_an_item_at_once() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.flush)
    assert await batcher.submit(1) == 10
    assert await batcher.submit(2) == 20
    assert recorder.batches == [[1], [2]]


async def test_items_arriving_during_a_write_go_out_together_in_order() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher: Batcher[int, int] = Batcher(recorder.flush, max_size=3)
    first = asyncio.ensure_future(batcher.submit(1))
    for _ in range(3):  # the first batch is being written
        await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batcher.submit(n)) for n in range(2, 7)]
    await asyncio.sleep(0)
    batcher.add(7)  # nobody waits for this one's result
    recorder.gate.set()
    assert await first == 10
    assert [await r for r in rest] == [20, 30, 40, 50, 60]
    await asyncio.sleep(0)
    assert recorder.batches == [[1], [2, 3, 4], [5, 6, 7]]


async def test_a_failed_write_reaches_every_waiter_of_its_batch_only() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher: Batcher[int, int] = Batcher(recorder.flush)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    bad = [asyncio.ensure_future(batcher.submit(n)) for n in (2, -3)]
    recorder.gate.set()
    assert await first == 10
    for waiter in bad:
        with pytest.raises(ValueError, match="negative"):
            await waiter
    assert await batcher.submit(4) == 40, "the batcher carries on"


async def test_a_waiter_that_gives_up_does_not_break_the_batch() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher: Batcher[int, int] = Batcher(recorder.flush)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    impatient = asyncio.ensure_future(batcher.submit(2))
    patient = asyncio.ensure_future(batcher.submit(3))
    await asyncio.sleep(0)
    impatient.cancel()
    recorder.gate.set()
    assert (await first, await patient) == (10, 30)
    assert recorder.batches == [[1], [2, 3]]
