"""Open-loop pacing: start send i at t0 + i/rate, whether or not earlier sends are done.

A send is started when it is due, not made up front as a task that sleeps until then:
thousands of sleeping tasks took the load generator about 130 ms to create, and every send
due meanwhile then went out at once, a burst of over a hundred requests at the start of
each measured run that decided its p99. The competitors' scripts in bench/others pace the
same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any


async def paced(count: int, rate: float, send: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    """Run send(0) .. send(count - 1), send(i) started at t0 + i/rate; returns when all end.

    Every send that is due is started before sleeping again, so when the event loop wakes
    late the sends it owes go out at once instead of lowering the offered rate.
    """
    started: list[asyncio.Task[None]] = []
    t0 = time.perf_counter()
    while len(started) < count:
        now = time.perf_counter()
        while len(started) < count and t0 + len(started) / rate <= now:
            started.append(asyncio.create_task(send(len(started))))
        if len(started) < count:
            await asyncio.sleep(t0 + len(started) / rate - time.perf_counter())
    await asyncio.gather(*started)
