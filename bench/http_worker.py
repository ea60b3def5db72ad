"""A worker over the HTTP worker protocol, for make bench: it claims batches of no-op jobs
and reports their ends in batches, as a worker in another language would.

    python -m bench.http_worker URL KEY [--batch 100] [--loops 2] [--starts FILE]

`--loops` claim loops run at once over their own keep-alive connections, and the ends go
out on another, batched (POST /v1/workers/outcomes): a claim is on the wire while the
previous batch's outcomes are written. With `--starts`,
each job's id and the time it was received (time.time()) go to FILE, one line each, for
the pickup latency. Runs until SIGTERM.

It speaks HTTP through the bench's small keep-alive client (bench/http_load.py), on uvloop:
the figures are the server's, as a worker on a lean HTTP stack sees them, not an HTTP
library's in this process (httpx costs about a millisecond of CPU per request).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import uvloop

from bench.http_load import Client


class Outcomes:
    """Ends waiting to be reported: one POST at a time carries all that piled up."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._pending: list[dict[str, object]] = []
        self._wake = asyncio.Event()

    def add(self, outcomes: list[dict[str, object]]) -> None:
        self._pending += outcomes
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[:1000], self._pending[1000:]
                status, _ = await self._client.post(
                    "/v1/workers/outcomes", orjson.dumps({"outcomes": batch})
                )
                _check(status)


def _check(status: int) -> None:
    if status >= 400:
        raise RuntimeError(f"the server answered {status}")


async def _loop(
    client: Client,
    worker_id: str,
    batch: int,
    starts: Path | None,
    outcomes: Outcomes,
) -> None:
    claim = orjson.dumps(
        {"worker": {"id": worker_id}, "queues": ["default"], "max_jobs": batch, "wait": 5}
    )
    while True:
        status, answer = await client.post("/v1/workers/claim", claim)
        _check(status)
        jobs = orjson.loads(answer)
        if not jobs:
            continue
        received = time.time()
        if starts is not None:
            with starts.open("a") as out:
                out.write("".join(f"{job['id']} {received}\n" for job in jobs))
        outcomes.add(
            [
                {"job_id": job["id"], "outcome": "complete", "lease_token": job["lease_token"]}
                for job in jobs
            ]
        )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("key")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--loops", type=int, default=2)
    parser.add_argument("--starts", type=Path, default=None)
    args = parser.parse_args()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    worker_id = f"bench-http-{os.getpid()}"
    url = urlsplit(args.url)
    # A connection per claim loop, and one for the outcomes.
    client = Client(
        url.hostname or "127.0.0.1",
        url.port or 80,
        size=args.loops + 1,
        headers={"Authorization": f"Bearer {args.key}"},
    )
    await client.open()
    try:
        outcomes = Outcomes(client)
        loops = [
            asyncio.create_task(
                _loop(client, f"{worker_id}-{i}", args.batch, args.starts, outcomes)
            )
            for i in range(args.loops)
        ]
        loops.append(asyncio.create_task(outcomes.run()))
        await stop.wait()
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
    finally:
        await client.close()


if __name__ == "__main__":
    uvloop.run(main())
