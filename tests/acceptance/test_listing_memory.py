"""GET /jobs over big jobs on a real `jqs serve`: memory stays bounded and comes back."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import time
import zlib
from functools import partial

import asyncpg
import httpx
import orjson
import psutil
import pytest

from tests.acceptance.conftest import StartJqs

ADMIN_KEY = "test-admin-key-0123456789abcdefghijkl"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
JOBS = 100
PARALLEL = 20
MIB = 1024 * 1024


def _rss(process: psutil.Process) -> int:
    """The server's resident memory, its children's included (none are expected)."""
    return process.memory_info().rss + sum(
        child.memory_info().rss for child in process.children(recursive=True)
    )


class _PeakRss:
    """Samples a process's RSS in a thread until stopped; keeps the highest."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = _rss(process)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss(self.process))

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def _insert_big_jobs(dsn: str) -> list[int]:
    """100 completed jobs, each with a ~1 MiB payload and a ~1 MiB result of random text
    (which PostgreSQL cannot compress much), written in SQL to keep the test fast."""
    blob = base64.b64encode(os.urandom(MIB * 3 // 4)).decode()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET synchronous_commit = off")  # test data: no need to wait
        rows = await conn.fetch(
            """
            INSERT INTO jobs (payload, status, result, attempts, started_at, finished_at)
            SELECT jsonb_build_object('task', 'big', 'n', n, 'blob', $1::text),
                   'completed', jsonb_build_object('n', n, 'blob', $2::text), 1, now(), now()
            FROM generate_series(1, $3::int) AS n
            RETURNING id
            """,
            blob,
            blob[::-1],
            JOBS,
        )
    finally:
        await conn.close()
    return sorted((row["id"] for row in rows), reverse=True)


class _Page(asyncio.BufferedProtocol):
    """One GET /jobs?limit=100 on a socket of its own (Connection: close), read into one
    reused buffer: the response head, then a checksum and the length of everything after it
    (the chunked body with its framing, the same bytes for the same page), and the whole
    response when `keep`. An HTTP client library costs more CPU than this 2-core machine
    can spare beside the server and PostgreSQL."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.head, self.in_head = b"", True
        self.checksum = self.length = 0
        self.kept = bytearray()
        self.done = asyncio.get_running_loop().create_future()
        self._buffer = bytearray(MIB)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(
            f"GET /jobs?limit={JOBS} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {ADMIN_KEY}\r\nConnection: close\r\n\r\n".encode()
        )

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buffer)

    def buffer_updated(self, nbytes: int) -> None:
        data = memoryview(self._buffer)[:nbytes]
        if self.keep:
            self.kept += data
        if self.in_head:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.in_head = False
            head, _, rest = self.head.partition(b"\r\n\r\n")
            self.head = head + b"\r\n"
            data = memoryview(rest)
        self.checksum = zlib.crc32(data, self.checksum)
        self.length += len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.done.set_result(exc)


def _dechunk(response: bytes) -> bytes:
    """The body of a whole chunked HTTP/1.1 response."""
    body = bytearray()
    position = response.index(b"\r\n\r\n") + 4
    while True:
        end = response.index(b"\r\n", position)
        size = int(response[position:end], 16)
        if size == 0:
            return bytes(body)
        body += response[end + 2 : end + 2 + size]
        assert response[end + 2 + size : end + 4 + size] == b"\r\n"
        position = end + 4 + size


def _same(page: _Page) -> _Page:
    return page


async def _parallel_pages(port: int) -> list[_Page]:
    loop = asyncio.get_running_loop()
    pages = []
    for i in range(PARALLEL):
        page = _Page(keep=i == 0)
        await loop.create_connection(partial(_same, page), "127.0.0.1", port)
        pages.append(page)
    for page in pages:
        assert await asyncio.wait_for(page.done, 120) is None
    return pages


@pytest.mark.timeout(150)
def test_parallel_listings_of_big_jobs_keep_memory_bounded(dsn: str, start_jqs: StartJqs) -> None:
    began = time.monotonic()
    ids = asyncio.run(_insert_big_jobs(dsn))
    inserted = time.monotonic()
    proc = start_jqs("serve", "--no-worker", DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY)
    server = psutil.Process(proc.proc.pid)
    with httpx.Client(base_url=proc.url, headers=AUTH, timeout=10) as client:
        for _ in range(3):  # warm: the pool's connections and the first listing's imports
            assert client.get("/jobs", params={"limit": 2}).status_code == 200
    time.sleep(0.5)
    before = _rss(server)

    listing = time.monotonic()
    with _PeakRss(server) as peak:
        pages = asyncio.run(_parallel_pages(proc.port))
    listed = time.monotonic()

    # All twenty are the same bytes, and the one kept is the whole page, in order.
    for page in pages:
        head = page.head.decode("latin-1").lower()
        assert head.startswith("http/1.1 200 "), head
        assert "content-type: application/json\r\n" in head, head
        assert "transfer-encoding: chunked\r\n" in head, head
    assert len({(page.checksum, page.length) for page in pages}) == 1
    body = _dechunk(bytes(pages[0].kept))
    assert len(body) > JOBS * 2 * MIB
    jobs = orjson.loads(body)
    assert [job["id"] for job in jobs] == ids
    assert all(len(job["payload"]["blob"]) == len(job["result"]["blob"]) == MIB for job in jobs)
    assert {job["status"] for job in jobs} == {"completed"}
    del jobs, body, pages

    troubles = [
        line
        for line in proc.lines
        if line.get("level") == "error" or "unavailable" in line["event"]
    ]
    assert not troubles, troubles[:3]
    rise = peak.peak - before
    print(f"rss before {before / MIB:.0f} MB, peak +{rise / MIB:.0f} MB, {listed - began:.1f}s")
    assert rise < 150 * MIB, f"RSS rose by {rise / MIB:.0f} MB during the listings"
    deadline = time.monotonic() + 10
    while (after := _rss(server)) - before >= 50 * MIB and time.monotonic() < deadline:
        time.sleep(0.1)
    assert after - before < 50 * MIB, f"RSS stayed {(after - before) / MIB:.0f} MB higher"
    print(
        f"rss before {before / MIB:.0f} MB, peak +{rise / MIB:.0f} MB, "
        f"after +{(after - before) / MIB:.0f} MB; insert {inserted - began:.1f}s, "
        f"listings {listed - listing:.1f}s, all {time.monotonic() - began:.1f}s"
    )
    # 4 GB leave the database as JSON text, most of the work: under a minute, on a 2-core
    # machine that also runs the client (the test's own time is bounded by its timeout).
    assert listed - listing < 60
