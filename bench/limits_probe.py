"""Which connection limits each candidate HTTP server enforces, tried over loopback sockets.

    python -m bench.limits_probe --dsn postgresql://postgres@127.0.0.1:5432/postgres
    python -m bench.limits_probe --dsn ... --servers granian,hypercorn

Each server serves JQS's app (bench/served_app.py) with JQS_HEADER_TIMEOUT=3,
JQS_KEEP_ALIVE_TIMEOUT=2 and JQS_MAX_CONNECTIONS=10 (each server's nearest equivalent), on a
database of its own that is dropped afterwards, and gets:

- a 70,000-byte header in one write, and 4 MB of headers in 1 KB lines;
- a request whose header lines come every 0.5 s, and a connection that sends nothing;
- an idle keep-alive connection after one answer;
- a new request while 12 connections sit part-way through their headers.

The answer to each is printed as a row: what came back, and after how long.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg

from bench.common import free_port, start, wait_http, with_database
from bench.served_app import SERVERS

HEADER_TIMEOUT, KEEP_ALIVE, CAP = 3, 2, 10
WAIT = 8.0  # longest a probe waits for the server to act


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def _status(sock: socket.socket, timeout: float = WAIT) -> str:
    """The status line the server sent, or what happened instead."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return "closed, no answer"
            data += chunk
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return f"no answer in {timeout:g}s"
    return data.split(b"\r\n", 1)[0].decode("latin-1").removeprefix("HTTP/1.1 ").strip()


def _until_closed(sock: socket.socket, began: float, feed: bytes = b"") -> str:
    """Wait for the server to close sock (sending `feed` every 0.5 s meanwhile)."""
    sock.settimeout(0.5)
    said = b""
    while time.monotonic() - began < WAIT:
        if feed:
            try:
                sock.sendall(feed)
            except OSError:
                break
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return f"reset after {time.monotonic() - began:.1f}s"
        if not chunk:
            break
        said += chunk
    took = time.monotonic() - began
    if took >= WAIT:
        return f"still open after {WAIT:g}s"
    first = said.split(b"\r\n", 1)[0].decode("latin-1").removeprefix("HTTP/1.1 ")
    return f"closed after {took:.1f}s" + (f" ({first.strip()})" if said else "")


def big_header(port: int) -> str:
    with _connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        return _status(sock)


def many_headers(port: int) -> str:
    with _connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        with contextlib.suppress(OSError):
            for i in range(4_000):
                sock.sendall(f"X-H{i}: {'b' * 1000}\r\n".encode())
        return _status(sock)


def slow_headers(port: int) -> str:
    with _connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        return _until_closed(sock, time.monotonic(), feed=b"X-Slow: 1\r\n")


def silent(port: int) -> str:
    with _connect(port) as sock:
        return _until_closed(sock, time.monotonic())


def idle_keep_alive(port: int) -> str:
    with _connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(WAIT)
        data = b""
        while not data.endswith(b"OK"):
            data += sock.recv(65536)
        return _until_closed(sock, time.monotonic())


def past_the_cap(port: int) -> str:
    held = [_connect(port) for _ in range(CAP + 2)]
    try:
        for sock in held:
            sock.sendall(b"GET /health HTTP/1.1\r\n")
        time.sleep(0.3)
        with _connect(port) as sock:
            began = time.monotonic()
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            status = _status(sock, 5)
            return f"{status} in {time.monotonic() - began:.2f}s"
    finally:
        for sock in held:
            sock.close()


PROBES: dict[str, Callable[[int], str]] = {
    "70,000-byte header": big_header,
    "4 MB of 1 KB header lines": many_headers,
    f"a header line every 0.5s (timeout {HEADER_TIMEOUT}s)": slow_headers,
    "a connection that sends nothing": silent,
    f"idle keep-alive (timeout {KEEP_ALIVE}s)": idle_keep_alive,
    f"a request past {CAP} connections": past_the_cap,
}


async def _probe(dsn: str, server: str) -> dict[str, str]:
    name = f"jqs_limits_probe_{server.replace('-', '_')}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        port = free_port()
        env = {
            "DATABASE_URL": with_database(dsn, name),
            "JQS_LOG_LEVEL": "warning",
            "JQS_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "JQS_KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE),
            "JQS_MAX_CONNECTIONS": str(CAP),
        }
        argv = [sys.executable, "-m", "bench.served_app", "--server", server, "--port", str(port)]
        proc = start(argv, env, Path(tempfile.gettempdir()) / f"{name}.log")
        try:
            await wait_http(f"http://127.0.0.1:{port}/health")
            return {label: await asyncio.to_thread(fn, port) for label, fn in PROBES.items()}
        finally:
            proc.stop()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="a PostgreSQL server to make databases on")
    parser.add_argument("--servers", default=",".join(SERVERS))
    args = parser.parse_args()
    servers = args.servers.split(",")
    results = {server: await _probe(args.dsn, server) for server in servers}
    print("| probe | " + " | ".join(servers) + " |")
    print("|---" * (len(servers) + 1) + "|")
    for label in PROBES:
        print(f"| {label} | " + " | ".join(results[s][label] for s in servers) + " |")


if __name__ == "__main__":
    asyncio.run(main())
