"""Failover of a real pg_auto_failover cluster under load: a planned failover, then a crash
of the new primary's host. Clients submit over HTTP to two `jqs serve` processes, whose
workers drain; every execution is recorded. Skipped, with the reason, where pg_auto_failover
cannot be installed or run.

Select these tests with `-m failover` (or leave them out with `-m "not failover"`)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from jqs.store.migrate import migrate
from jqs.store.notify import LISTENER_APP
from tests.acceptance.conftest import StartJqs
from tests.support.autofailover import Cluster, Node, why_not
from tests.support.proc import JqsProcess
from tests.support.records import read_runs
from tests.support.waiting import eventually

pytestmark = [pytest.mark.failover, pytest.mark.timeout(900)]

KEY = "test-admin-key-0123456789abcdefghijkl"
COMMAND_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
LEASE = 5.0
# A request may wait for a connection (connect timeout) and then for its statement (command
# timeout); beyond that, plus room for a loaded machine, it hangs.
HANG_LIMIT = COMMAND_TIMEOUT + CONNECT_TIMEOUT + 5.0
RECOVERY_LIMIT = 10.0
SERVERS = 2


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    reason = why_not()
    if reason is not None:
        pytest.skip(f"failover test skipped: {reason}")
    made = Cluster()
    try:
        made.start()
        yield made
    except BaseException:
        print(made.logs())
        raise
    finally:
        made.close()


@dataclass
class Reply:
    sent: float  # time.time()
    done: float
    status: int  # 0: no answer within HANG_LIMIT
    job_id: int | None
    retry_after: str | None


@dataclass
class Load:
    """Clients submitting jobs to every server, round robin, until stopped."""

    urls: list[str]
    replies: list[Reply] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, client: int) -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(timeout=HANG_LIMIT, headers=headers) as http:
            for n in range(100_000):  # bounded in count and, through `stop`, in time
                if self.stop.is_set():
                    return
                url = self.urls[n % len(self.urls)]
                sent = time.time()
                try:
                    r = http.post(
                        f"{url}/jobs",
                        json={"task": "sleep", "seconds": 0.05, "client": client, "n": n},
                    )
                    status, job_id = r.status_code, (r.json().get("id") if r.is_success else None)
                    reply = Reply(sent, time.time(), status, job_id, r.headers.get("retry-after"))
                except httpx.TimeoutException:
                    reply = Reply(sent, time.time(), 0, None, None)
                except httpx.TransportError:
                    reply = Reply(sent, time.time(), -1, None, None)
                self.replies.append(reply)
                time.sleep(0.05 if reply.status == 201 else 0.2)

    def accepted_since(self, moment: float) -> list[Reply]:
        return [r for r in list(self.replies) if r.status == 201 and r.sent >= moment]


@dataclass
class Outage:
    name: str
    began: float  # time.time() when the failover was asked for / the host died
    writable: float = 0.0  # when the new primary first accepted a write
    served: float = 0.0  # when JQS first accepted a job sent after that

    @property
    def recovery(self) -> float:
        return self.served - self.writable


def _writable_at(cluster: Cluster, node: Node, within: float) -> float:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cluster.accepts_writes(node):
            return time.time()
        time.sleep(0.2)
    raise AssertionError(f"{node.name} did not accept writes within {within}s: {cluster.states()}")


async def _outage(
    name: str, cluster: Cluster, load: Load, cause: object, new_primary: Node
) -> Outage:
    outage = Outage(name, time.time())
    watcher = asyncio.create_task(asyncio.to_thread(_writable_at, cluster, new_primary, 180))
    await asyncio.sleep(0)
    await asyncio.to_thread(cause)  # type: ignore[arg-type]
    outage.writable = await watcher

    async def served_again() -> bool:
        after = load.accepted_since(outage.writable)
        if after:
            outage.served = min(r.done for r in after)
        return bool(after)

    await eventually(served_again, within=60, interval=0.2)

    async def listening_there() -> bool:
        # Every process's listener has moved to the new primary.
        conn = await asyncpg.connect(new_primary.dsn)
        try:
            found = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = current_database()",
                LISTENER_APP,
            )
        finally:
            await conn.close()
        return bool(found == SERVERS)

    await eventually(listening_there, within=30, interval=0.5)
    print(
        f"\n{name}: new primary accepted writes {outage.writable - outage.began:.1f}s after "
        f"the fault; JQS served again {outage.recovery:.1f}s after that"
    )
    return outage


async def _settled(cluster: Cluster, primary: Node, secondary: Node) -> None:
    def both() -> bool:
        return cluster.states() == {primary.name: "primary", secondary.name: "secondary"}

    async def check() -> bool:
        return await asyncio.to_thread(both)

    await eventually(check, within=180, interval=0.5)


async def test_failover_and_crash_lose_no_accepted_job(
    cluster: Cluster, start_jqs: StartJqs, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(cluster.url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    record = tmp_path / "runs.txt"
    env = {
        "DATABASE_URL": cluster.url,
        "JQS_ADMIN_KEY": KEY,
        "JQS_TEST_RECORD": str(record),
        "JQS_WORKER_CONCURRENCY": "4",
        "JQS_DB_POOL_MAX": "6",
        "JQS_DB_COMMAND_TIMEOUT": str(COMMAND_TIMEOUT),
        "JQS_DB_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
        "JQS_LEASE_SECONDS": str(LEASE),
        "JQS_RESCUE_INTERVAL": "1",
        "JQS_MAX_ATTEMPTS": "20",
        "JQS_RETRY_BACKOFF_BASE": "0.1",
        "JQS_POLL_INTERVAL": "0.2",
    }
    servers: list[JqsProcess] = [start_jqs("serve", **env) for _ in range(SERVERS)]
    load = Load([s.url for s in servers])
    clients = [threading.Thread(target=load.run, args=(i,)) for i in range(3)]
    for client in clients:
        client.start()
    node1, node2 = cluster.nodes
    outages: list[Outage] = []
    try:
        await eventually(lambda: _count(load, 30), within=60, interval=0.2)
        outages.append(
            await _outage("planned failover", cluster, load, cluster.perform_failover, node2)
        )
        # The old primary must follow again (a synchronous standby) before the next fault,
        # or the crash below would take commits that only the crashed host had.
        await _settled(cluster, node2, node1)
        await asyncio.sleep(3)
        outages.append(await _outage("crash", cluster, load, lambda: cluster.crash(node2), node1))
        await asyncio.sleep(3)
    finally:
        load.stop.set()
        for client in clients:
            await asyncio.to_thread(client.join, HANG_LIMIT + 10)

    replies = list(load.replies)
    codes = Counter(r.status for r in replies)
    accepted = sorted({r.job_id for r in replies if r.status == 201 and r.job_id is not None})
    slowest = max(r.done - r.sent for r in replies)
    print(f"replies: {dict(codes)}; slowest {slowest:.1f}s")
    assert set(codes) <= {201, 503}, f"only 201s and 503s, never a 500 or a hang: {codes}"
    assert all(r.retry_after for r in replies if r.status == 503), "every 503 says Retry-After"
    assert slowest <= HANG_LIMIT
    assert codes[503] > 0, "the crash was seen by clients as 503s"
    for outage in outages:
        assert outage.recovery <= RECOVERY_LIMIT, f"{outage.name}: {outage.recovery:.1f}s"

    conn = await asyncpg.connect(cluster.url)
    try:

        async def all_final() -> bool:
            left = await conn.fetchval(
                "SELECT count(*) FROM jobs WHERE id = ANY($1) "
                "AND status NOT IN ('completed', 'failed', 'cancelled')",
                accepted,
            )
            return bool(left == 0)

        await eventually(all_final, within=180, interval=0.5)
        rows = await conn.fetch("SELECT id, status FROM jobs WHERE id = ANY($1)", accepted)
        stuck = await conn.fetchval(
            "SELECT count(*) FROM jobs WHERE status = 'processing' AND lease_expires_at < now()"
        )
    finally:
        await conn.close()
    assert len(rows) == len(accepted), "every job that got a 201 is in the database"
    assert {r["status"] for r in rows} == {"completed"}
    assert stuck == 0, "nothing stays processing beyond its lease"

    starts: dict[int, list[float]] = {}
    for run in read_runs(record):
        if run.event == "start":
            starts.setdefault(run.job_id, []).append(run.at)
    assert set(accepted) <= set(starts), "every accepted job ran"
    # A job runs again only when its runner could not report in time (its lease lapsed, or
    # its claim was lost with the crashed primary): only jobs started around an outage.
    twice = {job: min(at) for job, at in starts.items() if len(at) > 1}
    windows = [(o.began - LEASE - 2, o.served + 2) for o in outages]
    outside = {j: at for j, at in twice.items() if not any(a <= at <= b for a, b in windows)}
    assert not outside, f"jobs ran twice away from any outage: {outside}"
    print(
        f"{len(accepted)} jobs accepted, {len(twice)} ran more than once; "
        + "; ".join(f"{o.name}: recovered in {o.recovery:.1f}s" for o in outages)
    )
    for server in servers:
        assert server.proc.poll() is None, "JQS outlived both failovers without a restart"


async def _count(load: Load, n: int) -> bool:
    return len(load.accepted_since(0)) >= n
