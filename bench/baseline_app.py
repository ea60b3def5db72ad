"""The single-POST baseline: bare Starlette + asyncpg, one INSERT (one commit) per request.

Into the raw baselines' minimal table (bench/raw_queue.py), answering with the job as JSON
like JQS does; no validation beyond "is JSON", no logging.
Run: DATABASE_URL=... uvicorn bench.baseline_app:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_pool: asyncpg.Pool | None = None


@asynccontextmanager
async def _lifespan(_: Starlette) -> AsyncIterator[None]:
    global _pool
    _pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=10, max_size=10)
    yield
    await _pool.close()


async def submit(request: Request) -> Response:
    body = await request.body()
    assert _pool is not None
    row = await _pool.fetchrow(
        "INSERT INTO raw_jobs (payload) VALUES ($1::jsonb) "
        "RETURNING id, payload::text, status, created_at",
        body.decode(),
    )
    assert row is not None
    job = {
        "id": row["id"],
        "payload": orjson.Fragment(row["payload"].encode()),
        "status": row["status"],
        "result": None,
        "created_at": row["created_at"],
        "updated_at": row["created_at"],
    }
    return Response(orjson.dumps(job), status_code=201, media_type="application/json")


app = Starlette(routes=[Route("/jobs", submit, methods=["POST"])], lifespan=_lifespan)
