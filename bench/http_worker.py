"""A worker over the HTTP worker protocol, for make bench: it claims batches of no-op jobs
and reports their ends in batches, as a worker in another language would.

    python -m bench.http_worker URL KEY [--batch 100] [--loops 2] [--starts FILE]

`--loops` claim loops run at once over their own keep-alive connections, and the ends go
out on another, batched (POST /v1/workers/outcomes): a claim is on the wire while the
previous batch's outcomes are written. With `--starts`,
each job's id and the time it was received (time.time()) go to FILE, one line each, for
the pickup latency. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import orjson


class Outcomes:
    """Ends waiting to be reported: one POST at a time carries all that piled up."""

    def __init__(self, client: httpx.AsyncClient) -> None:
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
                done = await self._client.post(
                    "/v1/workers/outcomes",
                    content=orjson.dumps({"outcomes": batch}),
                    headers={"Content-Type": "application/json"},
                )
                done.raise_for_status()


async def _loop(
    client: httpx.AsyncClient,
    worker_id: str,
    batch: int,
    starts: Path | None,
    outcomes: Outcomes,
) -> None:
    claim = orjson.dumps(
        {"worker": {"id": worker_id}, "queues": ["default"], "max_jobs": batch, "wait": 5}
    )
    headers = {"Content-Type": "application/json"}
    while True:
        answer = await client.post("/v1/workers/claim", content=claim, headers=headers)
        answer.raise_for_status()
        jobs = orjson.loads(answer.content)
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
    # A connection per claim loop, and one for the outcomes.
    size = args.loops + 1
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    # TCP_NODELAY, as a worker in another language would set it: without it a request's
    # body waits behind its headers for the server's delayed ACK.
    transport = httpx.AsyncHTTPTransport(
        limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    async with httpx.AsyncClient(
        base_url=args.url,
        headers={"Authorization": f"Bearer {args.key}"},
        transport=transport,
        timeout=60,
    ) as client:
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


if __name__ == "__main__":
    asyncio.run(main())
