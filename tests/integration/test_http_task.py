"""The built-in `http` task against a real HTTP server on loopback (allowed by its policy)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jqs.netguard import DestinationPolicy
from jqs.tasks.control import FailNow
from jqs.tasks.http import HttpPayloadError, HttpTaskError, http_task


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Test", "yes")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/big":
            self._answer(200, b"x" * 10_000, "text/plain")
        elif self.path == "/missing":
            self._answer(404, b'{"error": "nope"}')
        else:
            echo = {"method": "GET", "path": self.path, "auth": self.headers.get("Authorization")}
            self._answer(200, json.dumps(echo).encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length).decode()
        echo = {"method": "POST", "body": data, "type": self.headers.get("Content-Type")}
        self._answer(201, json.dumps(echo).encode())


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def http() -> Any:
    # Loopback is refused by default (tests/integration/test_http_ssrf.py); opened here.
    policy = DestinationPolicy.parse("127.0.0.1/32")
    return http_task(default_timeout=5, max_body=1000, policy=policy).fn


async def test_get_with_headers(http: Any, server_url: str) -> None:
    result = await http(
        {"task": "http", "url": f"{server_url}/hello?x=1", "headers": {"Authorization": "Bearer t"}}
    )
    assert result["status_code"] == 200
    assert result["headers"]["x-test"] == "yes"
    assert json.loads(result["body"]) == {"method": "GET", "path": "/hello?x=1", "auth": "Bearer t"}
    assert result["truncated"] is False


async def test_post_json_and_text_body(http: Any, server_url: str) -> None:
    result = await http({"task": "http", "url": server_url, "method": "post", "json": {"a": 1}})
    assert result["status_code"] == 201
    echo = json.loads(result["body"])
    assert json.loads(echo["body"]) == {"a": 1}
    assert echo["type"] == "application/json"
    result = await http({"task": "http", "url": server_url, "method": "POST", "body": "plain"})
    assert json.loads(result["body"])["body"] == "plain"


async def test_body_is_bounded(http: Any, server_url: str) -> None:
    result = await http({"task": "http", "url": f"{server_url}/big"})
    assert len(result["body"]) == 1000
    assert result["truncated"] is True


async def test_error_status_is_kept_unless_raise_for_status(http: Any, server_url: str) -> None:
    result = await http({"task": "http", "url": f"{server_url}/missing"})
    assert result["status_code"] == 404
    with pytest.raises(HttpTaskError, match="answered 404"):
        await http({"task": "http", "url": f"{server_url}/missing", "raise_for_status": True})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"task": "http"}, "url: Field required"),
        ({"task": "http", "url": "ftp://x"}, "url"),
        ({"task": "http", "url": "http://x", "method": "BREW"}, "method"),
        ({"task": "http", "url": "http://x", "timeout": -1}, "timeout"),
        ({"task": "http", "url": "http://x", "headers": {"a": 1}}, "headers.a"),
    ],
)
async def test_invalid_payloads_fail_at_once(
    http: Any, payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(HttpPayloadError, match=message) as failed:
        await http(payload)
    assert isinstance(failed.value, FailNow)  # a retry could not fix it


@pytest.mark.parametrize("headers", [{"X-Bad": "a\r\nInjected: yes"}, {"X-Name": "caf\u00e9"}])
async def test_headers_that_cannot_be_sent_fail_at_once(
    http: Any, server_url: str, headers: dict[str, str]
) -> None:
    with pytest.raises(HttpPayloadError, match="cannot be sent"):
        await http({"task": "http", "url": server_url, "headers": headers})


async def test_connection_refused_by_an_allowed_peer_is_retried(http: Any) -> None:
    with pytest.raises(HttpTaskError, match="ConnectError") as failed:
        await http({"task": "http", "url": "http://127.0.0.1:9/"})
    assert not isinstance(failed.value, FailNow)
