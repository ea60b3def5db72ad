"""A worker over the HTTP worker protocol, for make bench: it claims batches of no-op jobs
and reports their ends in batches, as a worker in another language would.

    python -m bench.http_worker URL KEY [--batch 100] [--loops 2] [--starts FILE]

`--loops` claim/report loops run at once over their own keep-alive connections, so that a
claim is on the wire while the previous batch's outcomes are written. With `--starts`,
each job's id and the time it was received (time.time()) go to FILE, one line each, for
the pickup latency. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import orjson


async def _loop(
    client: httpx.AsyncClient, worker_id: str, batch: int, starts: Path | None, stop: asyncio.Event
) -> None:
    claim = orjson.dumps(
        {"worker": {"id": worker_id}, "queues": ["default"], "max_jobs": batch, "wait": 1}
    )
    headers = {"Content-Type": "application/json"}
    while not stop.is_set():
        answer = await client.post("/v1/workers/claim", content=claim, headers=headers)
        answer.raise_for_status()
        jobs = orjson.loads(answer.content)
        if not jobs:
            continue
        received = time.time()
        if starts is not None:
            with starts.open("a") as out:
                out.write("".join(f"{job['id']} {received}\n" for job in jobs))
        outcomes = [
            {"job_id": job["id"], "outcome": "complete", "lease_token": job["lease_token"]}
            for job in jobs
        ]
        done = await client.post(
            "/v1/workers/outcomes", content=orjson.dumps({"outcomes": outcomes}), headers=headers
        )
        done.raise_for_status()


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
    limits = httpx.Limits(max_connections=args.loops, max_keepalive_connections=args.loops)
    async with httpx.AsyncClient(
        base_url=args.url,
        headers={"Authorization": f"Bearer {args.key}"},
        limits=limits,
        timeout=60,
    ) as client:
        loops = [
            asyncio.create_task(_loop(client, f"{worker_id}-{i}", args.batch, args.starts, stop))
            for i in range(args.loops)
        ]
        await stop.wait()
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
