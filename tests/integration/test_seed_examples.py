"""Every example payload of the seed's README, through the API and the workers, completes."""

from __future__ import annotations

from typing import Any

import httpx

from jqs.store import PostgresStore
from jqs.tasks.loader import HttpTaskSettings, build_registry
from jqs.worker import PoolSettings, WorkerPool
from tests.support.http import api_client
from tests.support.waiting import eventually

SEED_EXAMPLES: list[dict[str, Any]] = [
    {"task": "send_email", "to": "user1@example.com", "subject": "Welcome!", "body": "Hello User1"},
    {
        "task": "resize_image",
        "image_url": "https://example.com/image1.jpg",
        "width": 800,
        "height": 600,
    },
    {"task": "generate_report", "report_type": "sales", "date": "2025-06-30"},
    {"task": "backup_database", "db_name": "prod_db", "destination": "s3://backups/prod_db.bak"},
    {"task": "notify_user", "user_id": 42, "message": "Your order has shipped."},
    {"task": "transcode_video", "video_id": "abc123", "format": "mp4"},
    {"task": "fetch_url", "url": "https://api.example.com/data", "method": "GET"},
    {"task": "update_cache", "key": "homepage", "value": "new content"},
    {"task": "process_payment", "user_id": 99, "amount": 49.99, "currency": "USD"},
    {"task": "send_sms", "phone": "+1234567890", "message": "Your code is 123456"},
]


async def test_all_seed_examples_complete(store: PostgresStore) -> None:
    registry = build_registry(
        [], demo=True, demo_delay=0.05, http=HttpTaskSettings(timeout=5, max_body=1024)
    )
    pool = WorkerPool(store, registry, PoolSettings(concurrency=5, poll_interval=0.05))
    await pool.start()
    try:
        async with api_client(store, on_enqueue=pool.notify) as client:
            created = []
            for payload in SEED_EXAMPLES:
                response = await client.post("/jobs", json=payload)
                assert response.status_code == 201
                assert response.json()["status"] == "queued"
                created.append(response.json())

            async def all_done() -> list[dict[str, Any]] | None:
                jobs = [(await client.get(f"/jobs/{job['id']}")).json() for job in created]
                return jobs if all(j["status"] == "completed" for j in jobs) else None

            jobs = await eventually(all_done, within=15)
            listed = (await client.get("/jobs", params={"status": "completed"})).json()
    finally:
        await pool.stop(5)
    for job, payload in zip(jobs, SEED_EXAMPLES, strict=True):
        assert job["payload"] == payload
        assert job["result"]["message"] == "Job completed successfully"
        assert job["result"]["demo"] is True
        assert job["attempts"] == 1
    assert {j["id"] for j in listed} == {j["id"] for j in jobs}


async def test_seed_shapes_survive_a_plain_client(store: PostgresStore) -> None:
    # A seed client only knows the six fields; extra fields must not break it.
    async with api_client(store) as client:
        response = await client.post("/jobs", json=SEED_EXAMPLES[0])
        job = response.json()
        assert {"id", "payload", "status", "result", "created_at", "updated_at"} <= set(job)
        listing = await client.get("/jobs", params={"page": 1, "limit": 10})
        assert isinstance(listing.json(), list)
        assert isinstance(httpx.Response(200, json=job).json()["id"], int)
