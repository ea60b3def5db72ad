"""Small real HTTP servers on loopback addresses, standing in for internal services."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SECRET = "internal-secret-4f1c9a"
# A test CA and a certificate it signed for the name jqs.test only, valid for a century:
#   openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 36500 \
#     -subj "/CN=JQS test CA" -addext basicConstraints=critical,CA:TRUE
#   openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=jqs.test
#   openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
#     -out server.pem -days 36500 -extfile <(echo subjectAltName=DNS:jqs.test)
TLS_DIR = Path(__file__).parent / "tls"
TLS_NAME = "jqs.test"


def trusting_test_ca() -> ssl.SSLContext:
    """A client context that trusts only the test CA."""
    return ssl.create_default_context(cafile=str(TLS_DIR / "ca.pem"))


@dataclass
class Hits:
    """Requests the servers answered, by path."""

    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str) -> None:
        with self.lock:
            self.paths.append(path)


class _Server(ThreadingHTTPServer):
    hits: Hits


class _V6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits.add(self.path)
        url = urlsplit(self.path)
        if url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(url.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f"{SECRET} host={self.headers.get('Host')}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve(
    host: str, port: int = 0, hits: Hits | None = None, *, tls: bool = False
) -> Iterator[tuple[int, Hits]]:
    """An HTTP server on (host, port) answering SECRET, or a 302 on /redirect?to=URL; with
    `tls`, HTTPS with the jqs.test certificate."""
    server_class = _V6Server if ":" in host else _Server
    server = server_class((host, port), _Handler)
    server.hits = hits if hits is not None else Hits()
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(TLS_DIR / "server.pem", TLS_DIR / "server.key")
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server.hits
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_loopback() -> Iterator[tuple[int, Hits]]:
    """One port answered on both 127.0.0.1 and ::1, so every spelling of loopback (including
    `localhost`, whichever family it resolves to first) would reach a server."""
    for _ in range(20):
        with ExitStack() as stack:
            port, hits = stack.enter_context(serve("127.0.0.1"))
            try:
                stack.enter_context(serve("::1", port, hits))
            except OSError:
                continue  # the port is taken on ::1; try another
            yield port, hits
            return
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")
