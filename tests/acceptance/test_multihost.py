"""Three worker hosts, each in its own network namespace, one PostgreSQL: 20,000 jobs, each
executed exactly once. Skipped, with the reason, where namespaces cannot be made."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support.netns import SUBNET, Host, make_hosts, remove_hosts, why_not
from tests.support.pg import NetworkPostgres
from tests.support.proc import JqsProcess, jqs_env
from tests.support.records import read_runs
from tests.support.waiting import eventually

JOBS = 20_000
HOSTS = 3


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    reason = why_not()
    if reason is not None:
        pytest.skip(f"multi-host test skipped: {reason}")
    made = make_hosts(HOSTS)
    yield made
    remove_hosts(made)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(300)
async def test_workers_on_three_hosts_run_every_job_exactly_once(
    hosts: list[Host], tmp_path: Path, pg_tmp_path: Path
) -> None:
    server = NetworkPostgres(
        pg_tmp_path / "pg", [h.gateway for h in hosts], _free_port(), f"{SUBNET}.0.0/16"
    )
    local_dsn = await asyncio.to_thread(server.start)
    workers: list[JqsProcess] = []
    try:
        conn = await asyncpg.connect(local_dsn)
        try:
            from jqs.store.migrate import migrate

            await migrate(conn)
            await conn.execute(
                'INSERT INTO jobs (payload) SELECT \'{"task": "sleep", "seconds": 0}\'::jsonb '
                "FROM generate_series(1, $1)",
                JOBS,
            )
            record = tmp_path / "runs.txt"
            for host in hosts:
                env = jqs_env(
                    DATABASE_URL=server.tcp_dsn(host.gateway),
                    JQS_TASKS="tests.support.tasks",
                    JQS_TEST_RECORD=str(record),
                    JQS_WORKER_CONCURRENCY="10",
                    JQS_LOG_LEVEL="warning",
                )
                workers.append(JqsProcess("worker", env=env, cwd=tmp_path, prefix=host.prefix))
            began = time.monotonic()

            async def all_done() -> bool:
                done = await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'completed'")
                return bool(done == JOBS)

            await eventually(all_done, within=240, interval=0.5)
            took = time.monotonic() - began
            attempts = await conn.fetchval("SELECT max(attempts) FROM jobs")
            per_worker = await conn.fetch("SELECT worker_id, count(*) AS n FROM jobs GROUP BY 1")
            # Every connection to the database came over a veth pair, not a local socket.
            clients = await conn.fetch(
                "SELECT DISTINCT host(client_addr) AS addr FROM pg_stat_activity "
                "WHERE application_name = 'jqs'"
            )
        finally:
            await conn.close()
        for worker in workers:
            worker.signal(signal.SIGTERM)
        for worker in workers:
            assert await asyncio.to_thread(worker.wait, 30) == 0, worker.stderr()
    finally:
        for worker in workers:
            worker.kill()
        await asyncio.to_thread(server.close)

    starts = Counter(r.job_id for r in read_runs(record) if r.event == "start")
    assert len(starts) == JOBS, "no job lost"
    assert set(starts.values()) == {1}, "no job ran twice"
    assert attempts == 1
    assert len(per_worker) == HOSTS, "every host did work"
    assert {c["addr"] for c in clients} <= {h.address for h in hosts}
    print(f"\n{JOBS} jobs on {HOSTS} namespaced hosts in {took:.1f}s ({JOBS / took:.0f} jobs/s)")
