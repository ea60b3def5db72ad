"""`jqs serve` behind a real PgBouncer in transaction mode: jobs submitted over HTTP are
drained, with notifications through a direct JQS_LISTEN_URL or by polling alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from jqs.store.notify import LISTENER_APP
from tests.acceptance.conftest import StartJqs
from tests.support.pgbouncer import PgBouncer
from tests.support.waiting import eventually

KEY = "test-admin-key-0123456789abcdefghijkl"
JOBS = 200


@pytest.fixture
def bouncer(pgbouncer: PgBouncer, dsn: str) -> Iterator[PgBouncer]:
    """A PgBouncer of this test's own, with fewer server sessions than JQS has connections."""
    own = PgBouncer(dsn, pool_size=4)
    own.start()
    yield own
    own.close()


@pytest.mark.parametrize("listen", [True, False], ids=["listen-url", "poll-only"])
async def test_serve_drains_through_pgbouncer(
    bouncer: PgBouncer, dsn: str, start_jqs: StartJqs, listen: bool
) -> None:
    env = {
        "DATABASE_URL": bouncer.dsn(dsn),
        "JQS_DATABASE_POOLER": "transaction",
        "JQS_ADMIN_KEY": KEY,
        "JQS_DB_POOL_MAX": "8",
        "JQS_WORKER_CONCURRENCY": "8",
    }
    if listen:
        env["JQS_LISTEN_URL"] = dsn
    serve = start_jqs("serve", **env)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=serve.url, headers=headers, timeout=30) as http:
        ids = []
        for n in range(JOBS):
            r = await http.post("/jobs", json={"task": "sleep", "seconds": 0.01, "n": n})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        conn = await asyncpg.connect(dsn)
        try:

            async def drained() -> bool:
                done = await conn.fetchval(
                    "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'completed'", ids
                )
                return bool(done == JOBS)

            await eventually(drained, within=120, interval=0.2)
            listeners = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = current_database()",
                LISTENER_APP,
            )
        finally:
            await conn.close()
        job = (await http.get(f"/jobs/{ids[-1]}")).json()
    assert job["status"] == "completed"
    if listen:
        assert listeners == 1, "the listener connected directly"
        assert not serve.events("listen_off")
    else:
        assert listeners == 0
        assert serve.events("listen_off"), "the poll-only mode is logged"
    await asyncio.to_thread(serve.kill)
