"""HTTP for job options, idempotency keys, cancellation and manual retry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jqs.api.state import ApiState
from jqs.port import LeaseCheckParams
from jqs.store import PostgresStore
from jqs.tasks.defaults import JobDefaults
from jqs.tasks.registry import TaskOptions, TaskRegistry, TaskSpec
from tests.integration.test_api import assert_problem
from tests.support.http import api_client
from tests.support.jobs import claim as claim_jobs


def _registry() -> TaskRegistry:
    return TaskRegistry(
        [TaskSpec.of("picky", lambda p: None, TaskOptions(max_attempts=7, timeout=9))]
    )


@pytest.fixture
async def client(store: PostgresStore) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(store) as c:
        c._transport.app.state.defaults = JobDefaults(  # type: ignore[attr-defined]
            _registry(), max_attempts=3, timeout=None
        )
        yield c


async def test_job_options_resolve_job_then_task_then_settings(client: httpx.AsyncClient) -> None:
    plain = (await client.post("/jobs", json={"task": "x"})).json()
    assert (plain["max_attempts"], plain["timeout"]) == (3, None)
    task_level = (await client.post("/jobs", json={"task": "picky"})).json()
    assert (task_level["max_attempts"], task_level["timeout"]) == (7, 9)
    own = await client.post(
        "/jobs", params={"max_attempts": 2, "timeout": 1.5}, json={"task": "picky"}
    )
    assert (own.json()["max_attempts"], own.json()["timeout"]) == (2, 1.5)
    assert own.json()["errors"] == []
    assert own.json()["cancel_requested"] is False


@pytest.mark.parametrize(
    "params",
    [
        {"max_attempts": 0},
        {"max_attempts": 1001},
        {"max_attempts": "x"},
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": 10**9},
    ],
)
async def test_bad_job_options_are_422(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    assert_problem(await client.post("/jobs", params=params, json={"task": "x"}), 422)


async def test_idempotency_key_returns_the_original_job(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await client.post("/jobs", json={"task": "x", "a": 1, "b": 2}, headers=headers)
    assert first.status_code == 201
    # Same request with its keys in another order: still the same request.
    again = await client.post(
        "/jobs",
        content=b'{"b": 2, "task": "x", "a": 1}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post("/jobs", json={"task": "x", "a": 2}, headers=headers)
    body = assert_problem(other, 422, "order-42", "another request")
    assert body["job_id"] == first.json()["id"]
    other_options = await client.post(
        "/jobs", params={"max_attempts": 9}, json={"task": "x", "a": 1, "b": 2}, headers=headers
    )
    assert_problem(other_options, 422)
    listed = (await client.get("/jobs")).json()
    assert len(listed) == 1


@pytest.mark.parametrize("key", [b"", b"x" * 256, b"tab\there", "caf\u00e9".encode()])
async def test_bad_idempotency_keys_are_422(client: httpx.AsyncClient, key: bytes) -> None:
    response = await client.post(
        "/jobs",
        json={"task": "x"},
        headers={"Idempotency-Key": key},
    )
    assert_problem(response, 422, "Idempotency-Key")


async def test_concurrent_duplicates_create_one_job(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(
        *(
            client.post("/jobs", json={"task": "x"}, headers={"Idempotency-Key": "same"})
            for _ in range(30)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 29 + [201]
    assert len({r.json()["id"] for r in responses}) == 1


async def test_cancel_and_retry_endpoints(client: httpx.AsyncClient, store: PostgresStore) -> None:
    job = (await client.post("/jobs", json={"task": "x"})).json()
    cancelled = await client.post(f"/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["result"]["type"] == "Cancelled"
    assert_problem(await client.post(f"/jobs/{job['id']}/cancel"), 409, "already cancelled")

    retried = await client.post(f"/jobs/{job['id']}/retry")
    assert retried.status_code == 200
    assert retried.json()["status"] == "queued"
    assert retried.json()["attempts"] == 0
    assert retried.json()["result"] is None
    assert_problem(await client.post(f"/jobs/{job['id']}/retry"), 409, "only failed or cancelled")

    [claim] = await claim_jobs(store, limit=1)
    running = await client.post(f"/jobs/{job['id']}/cancel")
    assert running.status_code == 202
    assert running.json()["status"] == "processing"
    assert running.json()["cancel_requested"] is True
    check = await store.check_leases(LeaseCheckParams([claim.lease]))
    assert check.cancel_requested == {claim.id}

    assert_problem(await client.post("/jobs/999999/cancel"), 404)
    assert_problem(await client.post("/jobs/0/retry"), 422)
    assert_problem(await client.post("/jobs/abc/cancel"), 422)


def test_defaults_resolution_unit() -> None:
    defaults = JobDefaults(_registry(), max_attempts=4, timeout=60)
    assert defaults.resolve("unknown", max_attempts=None, timeout=None) == (4, 60)
    assert defaults.resolve("picky", max_attempts=None, timeout=None) == (7, 9)
    assert defaults.resolve("picky", max_attempts=1, timeout=2) == (1, 2)
    assert defaults.resolve(None, max_attempts=None, timeout=None) == (4, 60)
    assert isinstance(ApiState.__dataclass_fields__["defaults"].default_factory(), JobDefaults)  # type: ignore[misc]
