"""HTTP for queues, priorities, run_at/delay, batch enqueue and /queues."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from jqs.api.state import Limits
from jqs.store import PostgresStore
from tests.integration.test_api import assert_problem
from tests.support.http import api_client


@pytest.fixture
async def client(store: PostgresStore) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(store) as c:
        yield c


async def test_job_options_in_the_query(client: httpx.AsyncClient) -> None:
    job = (
        await client.post(
            "/jobs",
            params={"queue": "emails", "priority": 7, "run_at": "2031-01-02T03:04:05Z"},
            json={"task": "send_email"},
        )
    ).json()
    assert job["queue"] == "emails"
    assert job["priority"] == 7
    assert job["run_at"] == "2031-01-02T03:04:05+00:00"
    assert job["payload"] == {"task": "send_email"}, "options never go into the payload"
    delayed = (await client.post("/jobs", params={"delay": 30}, json={"task": "x"})).json()
    assert delayed["run_at"] > delayed["created_at"]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"run_at": "2031-01-02T03:04:05Z", "delay": 5}, "not both"),
        ({"run_at": "2031-01-02T03:04:05"}, "timezone"),
        ({"run_at": "tomorrow"}, "run_at"),
        ({"delay": -1}, "delay"),
        ({"queue": "bad queue!"}, "queue"),
        ({"queue": ""}, "queue"),
        ({"priority": 40000}, "priority"),
        ({"priority": "high"}, "priority"),
    ],
)
async def test_bad_options_are_422(
    client: httpx.AsyncClient, params: dict[str, Any], fragment: str
) -> None:
    assert_problem(await client.post("/jobs", params=params, json={"task": "x"}), 422, fragment)


async def test_batch_creates_all_in_order(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    body = {
        "jobs": [
            {"payload": {"task": "a"}, "queue": "q1", "priority": 2},
            {"payload": {"task": "b"}, "delay": 60},
            {"payload": {"task": "c", "n": [1, 2]}, "max_attempts": 5, "timeout": 3},
        ]
    }
    response = await client.post("/jobs/batch", json=body)
    assert response.status_code == 201
    jobs = response.json()
    assert [j["task"] for j in jobs] == ["a", "b", "c"]
    assert (jobs[0]["queue"], jobs[0]["priority"]) == ("q1", 2)
    assert (jobs[2]["max_attempts"], jobs[2]["timeout"]) == (5, 3)
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 3


@pytest.mark.parametrize(
    "options", [{}, {"queue": "q1", "priority": -3, "timeout": 2.5}, {"delay": 60}]
)
async def test_batch_of_alike_jobs_answers_each_job_as_get_shows_it(
    client: httpx.AsyncClient, options: dict[str, Any]
) -> None:
    # Jobs sharing their options are inserted and rendered together (one statement, one
    # template); each must still read exactly as GET /jobs/{id} gives it.
    payloads = [{"task": "a"}, {"n": 1}, {"task": 'été "q"', "x": [1, {"y": None}]}]
    response = await client.post(
        "/jobs/batch", json={"jobs": [{"payload": p, **options} for p in payloads]}
    )
    assert response.status_code == 201, response.text
    jobs = response.json()
    assert [j["payload"] for j in jobs] == payloads
    assert [j["id"] for j in jobs] == sorted(j["id"] for j in jobs)
    for job in jobs:
        assert job == (await client.get(f"/jobs/{job['id']}")).json()


async def test_batch_refuses_a_payload_nested_too_deep(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    deep: Any = 1
    for _ in range(9):
        deep = {"a": deep}
    shallow = {f"k{i}": [i] for i in range(20)}  # many brackets, little depth
    async with api_client(store, limits=Limits(max_json_depth=8)) as c:
        body = {"jobs": [{"payload": shallow}, {"payload": deep}]}
        assert_problem(await c.post("/jobs/batch", json=body), 422, "jobs[1].payload", "deeper")
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 0
        ok = await c.post("/jobs/batch", json={"jobs": [{"payload": shallow}]})
        assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (
            {
                "jobs": [
                    {"payload": {"task": "a"}},
                    {"payload": [1]},
                    {"payload": {}, "priority": 1e9},
                ]
            },
            ["jobs[1].payload", "jobs[2].priority"],
        ),
        ({"jobs": [{"payload": {"a": "x\u0000"}}]}, ["jobs[0].payload", "NUL"]),
        ({"jobs": [{"payload": {}, "colour": "red"}]}, ["jobs[0].colour"]),
        ({"jobs": []}, ["jobs"]),
        ({"jobs": [{"payload": {}, "run_at": "2031-01-01T00:00:00Z", "delay": 1}]}, ["not both"]),
        ({"nojobs": 1}, ["jobs"]),
    ],
)
async def test_bad_batches_name_the_failing_items_and_create_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection, body: Any, fragments: list[str]
) -> None:
    assert_problem(await client.post("/jobs/batch", json=body), 422, *fragments)
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 0


async def test_each_job_of_a_batch_obeys_the_payload_limit(
    store: PostgresStore, conn: asyncpg.Connection
) -> None:
    def sized(n: int) -> dict[str, str]:
        return {"b": "x" * (n - len('{"b":""}'))}  # n bytes as compact JSON

    async with api_client(store, limits=Limits(max_body_bytes=1000)) as c:
        body = {"jobs": [{"payload": sized(1000)}, {"payload": sized(1001)}, {"payload": {}}]}
        assert_problem(await c.post("/jobs/batch", json=body), 413, "jobs[1].payload", "1000")
        body["jobs"].append({"payload": {}, "priority": "high"})
        problem = await c.post("/jobs/batch", json=body)
        assert_problem(problem, 422, "jobs[1].payload", "jobs[3].priority")
        assert [e["loc"] for e in problem.json()["errors"]] == [
            "jobs[1].payload",
            "jobs[3].priority",
        ]
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 0
        ok = await c.post("/jobs/batch", json={"jobs": [{"payload": sized(1000)}]})
        assert ok.status_code == 201, ok.text
    # With the default limits, one item as large as the whole batch may be is refused too.
    async with api_client(store) as c:
        body = {"jobs": [{"payload": {}}, {"payload": sized(2 * 1024 * 1024)}]}
        assert_problem(await c.post("/jobs/batch", json=body), 413, "jobs[1].payload", "1048576")
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 1


async def test_batch_size_limit(client: httpx.AsyncClient) -> None:
    body = {"jobs": [{"payload": {"task": "x"}} for _ in range(1001)]}
    assert_problem(await client.post("/jobs/batch", json=body), 422, "at most 1000")
    ok = await client.post("/jobs/batch", json={"jobs": body["jobs"][:1000]})
    assert ok.status_code == 201
    assert len(ok.json()) == 1000


async def test_queues_listing_and_patch(client: httpx.AsyncClient) -> None:
    await client.post("/jobs", params={"queue": "mail"}, json={"task": "x"})
    await client.post("/jobs", json={"task": "y"})
    listed = {q["name"]: q for q in (await client.get("/queues")).json()}
    assert listed["mail"]["counts"]["queued"] == 1
    assert listed["mail"]["concurrency_limit"] is None
    assert listed["default"]["oldest_queued_seconds"] >= 0

    patched = await client.patch("/queues/mail", json={"concurrency_limit": 4, "rate_limit": 10})
    assert patched.status_code == 200
    assert patched.json() == {
        "name": "mail",
        "paused": False,
        "concurrency_limit": 4,
        "rate_limit": 10.0,
    }
    paused = (await client.patch("/queues/mail", json={"paused": True})).json()
    assert (paused["paused"], paused["concurrency_limit"]) == (True, 4), "other fields kept"
    cleared = (await client.patch("/queues/mail", json={"concurrency_limit": None})).json()
    assert cleared["concurrency_limit"] is None
    fresh = (await client.patch("/queues/brand-new", json={"rate_limit": 1})).json()
    assert fresh["rate_limit"] == 1.0
    names = [q["name"] for q in (await client.get("/queues")).json()]
    assert names == sorted(names)
    assert "brand-new" in names


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/queues/mail", {"concurrency_limit": 0}, 422),
        ("/queues/mail", {"rate_limit": -1}, 422),
        ("/queues/mail", {"paused": "yes please"}, 422),
        ("/queues/mail", {"speed": 3}, 422),
        ("/queues/mail", [1], 422),
        ("/queues/bad%20name", {"paused": True}, 422),
    ],
)
async def test_bad_queue_patches(
    client: httpx.AsyncClient, path: str, body: Any, status: int
) -> None:
    assert_problem(await client.patch(path, json=body), status)
