"""The HTTP server's limits, tried as an attacker would: raw sockets to a real `jqs serve`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
import time

import httpx
import pytest

from tests.acceptance.conftest import StartJqs
from tests.support.proc import JqsProcess

ADMIN_KEY = "test-admin-key-0123456789abcdefghijkl"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
AUTH_LINE = f"Authorization: Bearer {ADMIN_KEY}\r\n".encode()


def _serve(
    start_jqs: StartJqs, dsn: str, *, prefix: tuple[str, ...] = (), **env: str
) -> JqsProcess:
    return start_jqs(
        "serve", "--no-worker", prefix=prefix, DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN_KEY, **env
    )


def _connect(proc: JqsProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proc.port), timeout=10)


def _request(path: str = "/health", extra: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: jqs\r\n".encode() + AUTH_LINE + extra + b"\r\n"


def _read_answer(sock: socket.socket, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    """The first whole answer on sock: status, headers, body (by Content-Length)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without an answer (got {data!r})"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(lines[0].split(" ")[1]), headers, body


def _closed_after(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closed sock (reading whatever it said), within limit."""
    began = time.monotonic()
    said = b""
    sock.settimeout(0.1)
    while time.monotonic() - began < limit:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - began, said
        if not chunk:
            return time.monotonic() - began, said
        said += chunk
    raise AssertionError(f"still open after {limit}s")


def test_headers_over_the_limit_get_431_and_under_it_pass(dsn: str, start_jqs: StartJqs) -> None:
    proc = _serve(start_jqs, dsn)
    with _connect(proc) as sock:  # just under 64 KiB in all: served
        sock.sendall(_request(extra=b"X-Fill: " + b"a" * 60_000 + b"\r\n"))
        status, _, body = _read_answer(sock)
        assert (status, body) == (200, b"OK")
    with _connect(proc) as sock:  # 65 KiB+ in one write
        sock.sendall(_request(extra=b"X-Big: " + b"a" * (65 * 1024) + b"\r\n"))
        status, headers, body = _read_answer(sock)
        assert status == 431
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(body)["status"] == 431
        assert "65536 bytes" in json.loads(body)["detail"]
    with _connect(proc) as sock:  # two writes, each under the limit, over it together
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: jqs\r\nX-A: " + b"a" * 40_000 + b"\r\n")
        time.sleep(0.2)
        sock.sendall(b"X-B: " + b"b" * 30_000 + b"\r\n" + AUTH_LINE + b"\r\n")
        assert _read_answer(sock)[0] == 431
    with _connect(proc) as sock:  # many small headers, written a piece at a time
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: jqs\r\n" + AUTH_LINE)
        began = time.monotonic()
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for i in range(4_000):  # 4 MB if nothing stopped it
                sock.sendall(f"X-H{i}: {'b' * 1000}\r\n".encode())
                sent += 1
        status, _, _ = _read_answer(sock)
        assert status == 431
        assert time.monotonic() - began < 5
    assert proc.proc.poll() is None


def test_a_connection_whose_headers_do_not_arrive_in_time_is_closed(
    dsn: str, start_jqs: StartJqs
) -> None:
    proc = _serve(start_jqs, dsn, JQS_HEADER_TIMEOUT="1.5")
    with _connect(proc) as slow, _connect(proc) as silent:
        began = time.monotonic()
        slow.sendall(b"GET /health HTTP/1.1\r\n")
        slow.settimeout(0.1)
        said = b""
        # One header line every 0.3 s: each keeps the connection busy, none finishes it.
        while time.monotonic() - began < 6:
            try:
                slow.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                chunk = slow.recv(65536)
            except TimeoutError:
                time.sleep(0.2)
                continue
            said += chunk
            if not chunk:
                break
        took = time.monotonic() - began
        assert 1.3 < took < 3.5, f"closed after {took:.1f}s with a 1.5s header timeout"
        assert said.startswith(b"HTTP/1.1 408 "), said
        # A connection that never says anything is closed too, without an answer.
        took, said = _closed_after(silent, 4)
        assert took < 2.5
        assert said == b""
    with _connect(proc) as fine:  # a prompt client is unaffected
        fine.sendall(_request())
        assert _read_answer(fine)[0] == 200


def test_idle_keep_alive_connections_are_closed(dsn: str, start_jqs: StartJqs) -> None:
    proc = _serve(start_jqs, dsn, JQS_KEEP_ALIVE_TIMEOUT="1")
    with _connect(proc) as sock:
        sock.sendall(_request())
        assert _read_answer(sock)[0] == 200
        time.sleep(0.3)
        sock.sendall(_request())  # still open within the timeout: reused
        assert _read_answer(sock)[0] == 200
        took, said = _closed_after(sock, 5)
        assert 0.7 < took < 3, f"idle connection closed after {took:.1f}s, timeout 1s"
        assert said == b""


def test_the_header_deadline_spares_bodies_and_idle_keep_alive(
    dsn: str, start_jqs: StartJqs
) -> None:
    proc = _serve(start_jqs, dsn, JQS_HEADER_TIMEOUT="1", JQS_KEEP_ALIVE_TIMEOUT="4")
    body = json.dumps({"task": "send_email", "to": "a@b.c"}).encode()
    with _connect(proc) as sock:
        sock.sendall(_request())
        assert _read_answer(sock)[0] == 200
        time.sleep(2)  # idle past the header timeout, within the keep-alive timeout
        sock.sendall(_request())
        assert _read_answer(sock)[0] == 200
        # Headers complete at once, the body dribbles in past the header timeout.
        sock.sendall(
            b"POST /jobs HTTP/1.1\r\nHost: jqs\r\nContent-Type: application/json\r\n"
            + AUTH_LINE
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        for i in range(0, len(body), 8):
            sock.sendall(body[i : i + 8])
            time.sleep(2 / (len(body) / 8))
        status, _, answer = _read_answer(sock)
        assert status == 201, answer


def test_connections_past_the_cap_get_a_fast_503(dsn: str, start_jqs: StartJqs) -> None:
    proc = _serve(start_jqs, dsn, JQS_MAX_CONNECTIONS="8")
    (limits,) = proc.wait_for("fd_limit")
    assert limits["max_connections"] == 8
    held = [_connect(proc) for _ in range(8)]
    try:
        for sock in held:  # each starts a request, so each is surely accepted
            sock.sendall(b"GET /health HTTP/1.1\r\n")
        time.sleep(0.3)
        for _ in range(3):
            with _connect(proc) as extra:
                began = time.monotonic()
                extra.sendall(_request())
                status, headers, body = _read_answer(extra)
                assert time.monotonic() - began < 0.5
                assert status == 503
                assert headers["content-type"] == "application/problem+json"
                assert headers["retry-after"] == "1"
                assert "too many open connections" in json.loads(body)["detail"]
    finally:
        for sock in held:
            sock.close()
    (refused,) = proc.wait_for("connections_refused")  # one line for the burst
    assert refused["max_connections"] == 8
    assert refused["turned_away"] == 1  # the first; the others wait for the next line
    deadline = time.monotonic() + 5
    while True:  # the held ones are gone: room again
        with _connect(proc) as sock:
            sock.sendall(_request())
            if _read_answer(sock)[0] == 200:
                break
        assert time.monotonic() < deadline, "no room after the held connections closed"
        time.sleep(0.1)


def test_start_up_raises_the_fd_limit_and_caps_connections_below_it(
    dsn: str, start_jqs: StartJqs
) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard RLIMIT_NOFILE here is {hard}")
    raised = _serve(start_jqs, dsn, prefix=("prlimit", "--nofile=1024:2048", "--"))
    (limits,) = raised.wait_for("fd_limit")
    assert limits["soft_before"] == 1024
    assert limits["soft"] == limits["hard"] == 2048
    assert limits["max_connections"] == 2048 - 512
    (lowered,) = raised.wait_for("max_connections_lowered")  # the default 10,000 did not fit
    assert lowered["max_connections"] == 2048 - 512


SLOW_CONNECTIONS = 5_000


async def _open_slow(
    port: int, count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """`count` connections, each part-way through a request's headers."""
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for start in range(0, count, 250):  # in steps, within the listen backlog
        batch = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(min(250, count - start)))
        )
        for _, writer in batch:
            writer.write(b"POST /jobs HTTP/1.1\r\nHost: jqs\r\n")
        opened.extend(batch)
    return opened


async def test_health_and_submit_answer_fast_with_5000_slow_connections_open(
    dsn: str, start_jqs: StartJqs
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = SLOW_CONNECTIONS + 1_000
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"the hard RLIMIT_NOFILE here is {hard}; this test needs {need}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    # Slow clients must stay open for the whole test: the header timeout is not what is
    # being tried here (see the test above).
    proc = _serve(start_jqs, dsn, JQS_HEADER_TIMEOUT="120")
    port = proc.port
    began = time.monotonic()
    slow = await _open_slow(port, SLOW_CONNECTIONS)
    opened_in = time.monotonic() - began
    latencies: dict[str, list[float]] = {"health": [], "submit": []}
    try:
        async with httpx.AsyncClient(
            base_url=proc.url,
            headers=AUTH,
            timeout=5,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            for round_no in range(4):  # a header line from every slow client each round
                for _, writer in slow:
                    writer.write(f"X-Slow-{round_no}: still typing\r\n".encode())
                await asyncio.gather(*(writer.drain() for _, writer in slow))
                t = time.monotonic()
                health = await client.get("/health")
                latencies["health"].append(time.monotonic() - t)
                assert health.status_code == 200
                t = time.monotonic()
                submit = await client.post("/jobs", json={"task": "send_email", "to": "a@b.c"})
                latencies["submit"].append(time.monotonic() - t)
                assert submit.status_code == 201, submit.text
                await asyncio.sleep(0.5)
        # Every slow client is still connected: the server held them all and still served.
        await asyncio.sleep(0.2)
        assert not any(reader.at_eof() for reader, _ in slow)
    finally:
        for _, writer in slow:
            writer.close()
    worst = {name: max(values) for name, values in latencies.items()}
    context = f"worst {worst}, {SLOW_CONNECTIONS} opened in {opened_in:.1f}s"
    assert worst["health"] < 1.0, context
    assert worst["submit"] < 1.0, context
