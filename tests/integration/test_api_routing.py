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
    # Written back in UTC, with its offset.
    offset = await client.post(
        "/jobs", params={"run_at": "2031-01-02T08:04:05+05:00"}, json={"task": "x"}
    )
    assert offset.json()["run_at"] == "2031-01-02T03:04:05+00:00"
    assert (await client.get(f"/jobs/{offset.json()['id']}")).json() == offset.json()
    edge = await client.post("/jobs", params={"run_at": "9999-12-31T23:59:59Z"}, json={})
    assert edge.json()["run_at"] == "9999-12-31T23:59:59+00:00"
    delayed = (await client.post("/jobs", params={"delay": 30}, json={"task": "x"})).json()
    assert delayed["run_at"] > delayed["created_at"]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"run_at": "2031-01-02T03:04:05Z", "delay": 5}, "not both"),
        ({"run_at": "2031-01-02T03:04:05"}, "timezone"),
        ({"run_at": "tomorrow"}, "run_at"),
        ({"delay": -1}, "delay"),
        ({"queue": "bad queue!"}, "query.queue: a queue name is 1-100 characters"),
        ({"queue": ""}, "queue"),
        ({"priority": 40000}, "priority"),
        ({"priority": "high"}, "priority"),
        ({"priority": 2**70}, "priority"),
        ({"max_attempts": 2**40}, "max_attempts"),
        ({"timeout": 1e300}, "timeout"),
        ({"delay": "inf"}, "delay"),
        # An offset that takes the time past what Python and the driver can hold.
        ({"run_at": "0001-01-01T00:00:00+01:00"}, "once its offset is applied"),
        ({"run_at": "9999-12-31T23:59:59-01:00"}, "once its offset is applied"),
        ({"prority": 5}, "did you mean 'priority'"),
        ({"priority": 5, "colour": "red"}, "query.colour: unknown query parameter"),
        # A number is not a time, though pydantic would read it as Unix seconds.
        ({"run_at": "0.5"}, "RFC 3339"),
        ({"run_at": "1700000000"}, "RFC 3339"),
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
        (
            {"jobs": [{"payload": {}}, {"payload": {}, "run_at": "0001-01-01T00:00:00+01:00"}]},
            ["jobs[1].run_at", "once its offset is applied"],
        ),
        # pydantic alone would read a number as Unix seconds or milliseconds, by its size.
        ({"jobs": [{"payload": {}, "run_at": 253402300799}]}, ["jobs[0].run_at", "RFC 3339"]),
        ({"jobs": [{"payload": {}, "queue": "a\u0000"}]}, ["jobs[0].queue"]),
        ({"jobs": [{"payload": {"task": "t" * 201}}]}, ["jobs[0].payload.task", "at most 200"]),
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


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("delay", False),
        ("timeout", True),
        ("priority", "5"),
        ("priority", 1.5),
        ("max_attempts", True),
        ("queue", 7),
    ],
)
async def test_batch_options_are_taken_as_json_types_not_coerced(
    client: httpx.AsyncClient, conn: asyncpg.Connection, option: str, value: Any
) -> None:
    body = {"jobs": [{"payload": {}, option: value}]}
    assert_problem(await client.post("/jobs/batch", json=body), 422, f"jobs[0].{option}")
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 0


async def test_a_batch_items_run_at_is_an_rfc_3339_string(client: httpx.AsyncClient) -> None:
    body = {"jobs": [{"payload": {}, "run_at": "2031-01-02T08:04:05+05:00"}, {"payload": {}}]}
    response = await client.post("/jobs/batch", json=body)
    assert response.status_code == 201, response.text
    assert response.json()[0]["run_at"] == "2031-01-02T03:04:05+00:00"
    late = {"jobs": [{"payload": {}, "run_at": "1700000000"}]}
    assert_problem(await client.post("/jobs/batch", json=late), 422, "jobs[0].run_at", "RFC 3339")


async def test_batch_integers_may_be_written_with_a_zero_fraction(
    client: httpx.AsyncClient,
) -> None:
    body = {"jobs": [{"payload": {}, "priority": -240.0, "max_attempts": 7.0, "timeout": 2}]}
    response = await client.post("/jobs/batch", json=body)
    assert response.status_code == 201, response.text
    job = response.json()[0]
    assert (job["priority"], job["max_attempts"], job["timeout"]) == (-240, 7, 2.0)


async def test_batch_takes_no_query_parameters(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    body = {"jobs": [{"payload": {"task": "x"}}]}
    answer = await client.post("/jobs/batch", params={"priority": 3}, json=body)
    assert_problem(answer, 422, "query.priority: unknown query parameter", "takes none")
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 0


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
        "max_queued": None,
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


async def test_queue_patch_takes_whole_floats_and_the_edges(client: httpx.AsyncClient) -> None:
    patched = await client.patch(
        "/queues/mail", json={"concurrency_limit": 4.0, "rate_limit": 0.001, "max_queued": 1e3}
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["concurrency_limit"], body["rate_limit"], body["max_queued"]) == (4, 0.001, 1000)
    cleared = (await client.patch("/queues/mail", json={"max_queued": None})).json()
    assert cleared["max_queued"] is None
    assert cleared["concurrency_limit"] == 4


async def test_delete_queue_settings(client: httpx.AsyncClient) -> None:
    await client.patch("/queues/mail", json={"concurrency_limit": 2, "max_queued": 5})
    job = (await client.post("/jobs", params={"queue": "mail"}, json={"task": "x"})).json()
    busy = assert_problem(await client.delete("/queues/mail"), 409, "1 unfinished jobs")
    assert busy["unfinished"] == 1
    await client.post(f"/jobs/{job['id']}/cancel")
    gone = await client.delete("/queues/mail")
    assert gone.status_code == 204
    assert gone.content == b""
    listed = {q["name"]: q for q in (await client.get("/queues")).json()}
    assert listed["mail"]["concurrency_limit"] is None, "listed by its finished job only"
    assert listed["mail"]["max_queued"] is None
    assert_problem(await client.delete("/queues/mail"), 404, "no settings")
    assert_problem(await client.delete("/queues/bad%20name"), 422)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/queues/mail", {"concurrency_limit": 0}, 422),
        ("/queues/mail", {"rate_limit": -1}, 422),
        ("/queues/mail", {"paused": "yes please"}, 422),
        ("/queues/mail", {"speed": 3}, 422),
        ("/queues/mail", [1], 422),
        ("/queues/bad%20name", {"paused": True}, 422),
        # Strict: booleans are booleans, limits are whole positive numbers.
        ("/queues/mail", {"paused": "yes"}, 422),
        ("/queues/mail", {"paused": 1}, 422),
        ("/queues/mail", {"concurrency_limit": True}, 422),
        ("/queues/mail", {"concurrency_limit": "4"}, 422),
        ("/queues/mail", {"concurrency_limit": 2.5}, 422),
        ("/queues/mail", {"concurrency_limit": 10**7}, 422),
        ("/queues/mail", {"rate_limit": 1e-300}, 422),
        ("/queues/mail", {"rate_limit": 0.0009}, 422),
        ("/queues/mail", {"rate_limit": 1e300}, 422),
        ("/queues/mail", {"rate_limit": True}, 422),
        ("/queues/mail", {"max_queued": 0}, 422),
        ("/queues/mail", {"max_queued": False}, 422),
        ("/queues/mail", {"max_queued": 1.5}, 422),
        ("/queues/mail", {"max_queued": 2**31}, 422),
        ("/queues/" + "q" * 101, {"paused": True}, 422),
    ],
)
async def test_bad_queue_patches(
    client: httpx.AsyncClient, path: str, body: Any, status: int
) -> None:
    assert_problem(await client.patch(path, json=body), status)
