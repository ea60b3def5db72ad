"""The HTTP contract: the seed's endpoints and shapes, and clear problems for bad input."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import asyncpg
import httpx
import orjson
import pytest

from jqs.api.state import Limits
from jqs.store import PostgresStore
from tests.support.http import api_client

JSON = {"Content-Type": "application/json"}
SEED_FIELDS = ["id", "payload", "status", "result", "created_at", "updated_at"]


@pytest.fixture
async def client(store: PostgresStore) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(store, limits=Limits(max_body_bytes=4096, max_json_depth=8)) as c:
        yield c


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    for fragment in fragments:
        assert fragment in body["detail"], body["detail"]
    assert "Traceback" not in response.text
    return body


async def test_post_job_answers_201_with_the_committed_job(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    payload = {"task": "send_email", "to": "user@example.com", "subject": "Hello"}
    response = await client.post("/jobs", json=payload)
    assert response.status_code == 201
    body = response.json()
    assert list(body)[:6] == SEED_FIELDS
    assert body["payload"] == payload
    assert body["status"] == "queued"
    assert body["result"] is None
    assert response.headers["location"] == f"/jobs/{body['id']}"
    # Visible from another connection: committed before we answered.
    row = await conn.fetchrow("SELECT status, payload FROM jobs WHERE id = $1", body["id"])
    assert row is not None
    assert row["status"] == "queued"
    assert orjson.loads(row["payload"]) == payload


async def test_post_wakes_local_workers(store: PostgresStore) -> None:
    calls: list[str] = []
    async with api_client(store, on_enqueue=calls.append) as c:
        await c.post("/jobs", json={"task": "x"})
        await c.post("/jobs", params={"queue": "mail"}, json={"task": "x"})
    assert calls == ["default", "mail"]


async def test_post_accepts_json_media_type_variants(client: httpx.AsyncClient) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.jqs+json"):
        response = await client.post(
            "/jobs", content=b'{"task": "x"}', headers={"Content-Type": content_type}
        )
        assert response.status_code == 201, content_type


async def test_big_and_unicode_payloads_round_trip(client: httpx.AsyncClient) -> None:
    payload = {
        "task": "x",
        "text": "héllo ✓ \U0001f600",
        "n": 2**53,
        "f": 0.1,
        "nested": [{"a": None}],
    }
    response = await client.post("/jobs", json=payload)
    assert response.status_code == 201
    got = await client.get(f"/jobs/{response.json()['id']}")
    assert got.json()["payload"] == payload


@pytest.mark.parametrize(
    ("body", "headers", "status", "fragment"),
    [
        (b"[1, 2]", JSON, 422, "JSON object, not array"),
        (b'"text"', JSON, 422, "not string"),
        (b"42", JSON, 422, "not number"),
        (b"null", JSON, 422, "not null"),
        (b"true", JSON, 422, "not boolean"),
        (b"{bad json", JSON, 400, "not valid JSON"),
        (b"", JSON, 400, "empty"),
        (b"   ", JSON, 400, "empty"),
        (b'{"a": NaN}', JSON, 400, "not valid JSON"),
        (b'{"a": 1e400}', JSON, 400, "not valid JSON"),
        (b'{"a": "\\ud800"}', JSON, 400, "not valid JSON"),
        (b'{"a": "x\\u0000y"}', JSON, 422, "NUL"),
        (b'{"a\\u0000": 1}', JSON, 422, "NUL"),
        # Longer than an index entry may be: every write ending the job would fail.
        (b'{"task": "' + b"t" * 201 + b'"}', JSON, 422, "payload.task is 201 characters"),
        (b'{"task": ["' + b"t" * 300 + b'"]}', JSON, 422, "payload.task as JSON text"),
        # orjson reads it as 0.0; PostgreSQL's numeric cannot hold its 20000 decimals.
        (b'{"a": 1e-20000}', JSON, 422, "digits after the decimal point"),
        (b'{"a": ' * 9 + b"1" + b"}" * 9, JSON, 422, "deeper than the limit of 8"),
        (b'{"task": "x"}', {"Content-Type": "text/plain"}, 415, "application/json"),
        (b'{"task": "x"}', {"Content-Type": "application/x-www-form-urlencoded"}, 415, "got"),
        (b'{"task": "x"}', {}, 415, "got none"),
        (b'{"a": "' + b"x" * 5000 + b'"}', JSON, 413, "4096 bytes"),
    ],
)
async def test_post_bad_input_is_a_clear_4xx(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str], status: int, fragment: str
) -> None:
    response = await client.post("/jobs", content=body, headers=headers)
    assert_problem(response, status, fragment)


async def test_post_oversized_chunked_body_is_refused(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"a": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = await client.post("/jobs", content=chunks(), headers=JSON)
    assert_problem(response, 413)


async def test_get_job(client: httpx.AsyncClient) -> None:
    created = (await client.post("/jobs", json={"task": "x"})).json()
    response = await client.get(f"/jobs/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/jobs/999999", 404),
        ("/jobs/abc", 422),
        ("/jobs/0", 422),
        ("/jobs/-3", 422),
        ("/jobs/1.5", 422),
        ("/jobs/9223372036854775808", 422),
        ("/jobs/99999999999999999999999999", 422),
    ],
)
async def test_get_unknown_or_malformed_id(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    assert_problem(await client.get(path), status)


async def test_list_newest_first_with_paging_and_filters(client: httpx.AsyncClient) -> None:
    ids = [(await client.post("/jobs", json={"task": f"t{i % 2}"})).json()["id"] for i in range(5)]
    body = (await client.get("/jobs")).json()
    assert isinstance(body, list)
    assert [j["id"] for j in body] == ids[::-1]
    page = (await client.get("/jobs", params={"page": 2, "limit": 2})).json()
    assert [j["id"] for j in page] == [ids[2], ids[1]]
    t0 = (await client.get("/jobs", params={"task": "t0"})).json()
    assert [j["id"] for j in t0] == [ids[4], ids[2], ids[0]]
    queued = (await client.get("/jobs", params={"status": "queued", "limit": 100})).json()
    assert len(queued) == 5
    assert (await client.get("/jobs", params={"status": "completed"})).json() == []
    assert (await client.get("/jobs", params={"page": 99})).json() == []


async def test_list_before_id_pages_by_cursor(client: httpx.AsyncClient) -> None:
    ids = [(await client.post("/jobs", json={"task": f"t{i % 2}"})).json()["id"] for i in range(5)]
    response = await client.get("/jobs", params={"before_id": ids[3], "limit": 2})
    assert response.headers["content-type"] == "application/json"
    assert [j["id"] for j in response.json()] == [ids[2], ids[1]]
    after = await client.get("/jobs", params={"before_id": ids[1], "limit": 2})
    assert [j["id"] for j in after.json()] == [ids[0]]
    # `page` with `before_id`: pages of the jobs below the cursor; filters apply as well.
    second = await client.get("/jobs", params={"before_id": ids[4], "limit": 2, "page": 2})
    assert [j["id"] for j in second.json()] == [ids[1], ids[0]]
    t0 = await client.get("/jobs", params={"before_id": ids[4], "task": "t0"})
    assert [j["id"] for j in t0.json()] == [ids[2], ids[0]]
    assert (await client.get("/jobs", params={"before_id": 1})).json() == []
    # The answer is the job as GET /jobs/{id} shows it.
    assert response.json()[0] == (await client.get(f"/jobs/{ids[2]}")).json()


async def test_list_limit_is_capped_at_100(client: httpx.AsyncClient, store: PostgresStore) -> None:
    for _ in range(3):
        await client.post("/jobs", json={"task": "x"})
    async with api_client(store, limits=Limits(page_size_max=2)) as capped:
        response = await capped.get("/jobs", params={"limit": 1000})
    assert response.status_code == 200
    assert len(response.json()) == 2
    assert Limits().page_size_max == 100


@pytest.mark.parametrize(
    "params",
    [
        {"page": 0},
        {"page": -1},
        {"page": "x"},
        {"limit": 0},
        {"limit": -5},
        {"limit": "ten"},
        {"status": "done"},
        {"page": 2**40},
        {"task": ""},
        {"before_id": 0},
        {"before_id": 2**63},
        {"before_id": "x"},
    ],
)
async def test_list_bad_query_is_422(client: httpx.AsyncClient, params: dict[str, object]) -> None:
    body = assert_problem(await client.get("/jobs", params=params), 422)
    assert body["errors"]


@pytest.mark.parametrize("task", ["\x00", "a\x00b"])
async def test_list_by_a_task_holding_nul_is_422_not_503(
    client: httpx.AsyncClient, task: str
) -> None:
    # PostgreSQL text cannot hold NUL: the database would refuse the statement.
    assert_problem(await client.get("/jobs", params={"task": task}), 422, "query.task", "NUL")
    answer = await client.get("/jobs", params={"task": task, "status": "queued"})
    assert_problem(answer, 422, "NUL")


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.text == "OK"
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok"}


async def test_database_gone_gives_503_not_500(store: PostgresStore, database: object) -> None:
    async with api_client(store) as c:
        await database.stop()  # type: ignore[attr-defined]
        assert_problem(await c.get("/ready"), 503, "database")
        assert_problem(await c.get("/jobs/1"), 503)
        response = await c.post("/jobs", json={"task": "x"})
        assert_problem(response, 503)
        assert (await c.get("/health")).text == "OK", "liveness does not depend on the database"


async def test_unknown_route_and_wrong_method_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nope"), 404)
    assert_problem(await client.delete("/jobs"), 405)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/jobs", "GET, POST"),  # POST /jobs is answered outside FastAPI's routes
        ("OPTIONS", "/jobs", "GET, POST"),
        ("GET", "/jobs/batch", "POST"),  # not taken for a job id
        ("PUT", "/jobs/5", "GET"),
        ("GET", "/jobs/5/cancel", "POST"),
        ("GET", "/queues/default", "DELETE, PATCH"),  # two routes of one router
        ("POST", "/openapi.json", "GET, HEAD"),
        ("POST", "/docs", "GET"),
        ("POST", "/docs/swagger-ui.css", "GET, HEAD"),
    ],
)
async def test_a_wrong_method_is_told_every_allowed_one(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path)
    assert_problem(response, 405, method, *allowed.split(", "))
    assert response.headers["allow"] == allowed


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation_ids = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"submit_job", "get_job", "list_jobs", "health", "ready"} <= operation_ids
    assert "requestBody" in spec["paths"]["/jobs"]["post"]
    for ref in set(re.findall(r'"\$ref": ?"#/([^"]+)"', json.dumps(spec))):
        node = spec
        for part in ref.split("/"):
            assert part in node, f"#/{ref} does not resolve"
            node = node[part]
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"expires_in": 0.5}, "expires_in"),  # ends before it could be used
        ({"rate_limit": "5"}, "rate_limit"),
        ({"rate_limit": True}, "rate_limit"),
        ({"expires_in": 60, "expires_at": "2031-01-01T00:00:00Z"}, "not both"),
    ],
)
async def test_a_new_key_is_asked_for_in_json_types(
    client: httpx.AsyncClient, spec: dict[str, object], fragment: str
) -> None:
    body = {"name": "ci", "scopes": ["jobs:read"], **spec}
    assert_problem(await client.post("/keys", json=body), 422, fragment)
    ok = await client.post("/keys", json={"name": "ci", "scopes": ["jobs:read"], "expires_in": 60})
    assert ok.status_code == 201, ok.text
