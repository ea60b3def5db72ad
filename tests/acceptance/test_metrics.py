"""GET /metrics on a real `jqs serve`: what it counts, who may read it, and switching it off."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.conftest import StartJqs

ADMIN = "test-admin-key-0123456789abcdefghijkl"
REPO = Path(__file__).resolve().parents[2]


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_jobs_requests_and_queues(dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN)
    with httpx.Client(base_url=proc.url, timeout=10, headers=_auth(ADMIN)) as client:
        reader = client.post("/keys", json={"name": "prometheus", "scopes": ["metrics"]})
        assert reader.status_code == 201, reader.text
        secret = reader.json()["secret"]
        ids = [client.post("/jobs", json={"task": "sleep", "seconds": 0}).json()["id"]]
        ids.append(
            client.post("/jobs", json={"task": "boom"}, params={"max_attempts": 1}).json()["id"]
        )
        ids.append(client.post("/jobs", json={"task": f"made-up-{time.time()}"}).json()["id"])
        parked = client.post(
            "/jobs", json={"task": "sleep"}, params={"queue": "parked", "delay": 3600}
        )
        assert parked.status_code == 201
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            statuses = {client.get(f"/jobs/{job_id}").json()["status"] for job_id in ids}
            if statuses <= {"completed", "failed"}:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"jobs still {statuses}")

        assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401
        submitter = client.post("/keys", json={"name": "s", "scopes": ["jobs:submit"]}).json()
        denied = client.get("/metrics", headers=_auth(submitter["secret"]))
        assert denied.status_code == 403
        assert "metrics" in denied.json()["detail"]

        answer = client.get("/metrics", headers=_auth(secret))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = _samples(answer.text)
    enqueued = "jqs_jobs_enqueued_total"
    assert _value(samples, enqueued, queue="default", task="sleep") == 1
    assert _value(samples, enqueued, queue="default", task="boom") == 1
    assert _value(samples, enqueued, queue="default", task="other") == 1, "unknown task names"
    assert _value(samples, enqueued, queue="parked", task="sleep") == 1
    finished = "jqs_jobs_finished_total"
    assert _value(samples, finished, queue="default", task="sleep", status="completed") == 1
    assert _value(samples, finished, queue="default", task="boom", status="failed") == 1
    assert _value(samples, finished, queue="default", task="other", status="failed") == 1
    assert _value(samples, "jqs_job_duration_seconds_count", queue="default", task="sleep") == 1
    assert _value(samples, "jqs_job_queue_wait_seconds_count", queue="default", task="boom") == 1
    assert _value(samples, "jqs_queue_jobs", queue="parked", status="queued") == 1
    assert _value(samples, "jqs_workers") >= 1
    routes = {dict(labels).get("route") for name, labels in samples if name.startswith("jqs_http")}
    assert {"/jobs", "/jobs/{job_id}", "/keys"} <= routes
    assert all(route is None or route.startswith("/") or route == "other" for route in routes)
    assert _value(samples, "process_resident_memory_bytes") > 0
    # Every metric the shipped Grafana dashboard queries is one that JQS serves.
    families = {family.name for family in text_string_to_metric_families(answer.text)}
    dashboard = json.loads((REPO / "deploy" / "grafana" / "jqs.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    named = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for expr in exprs
        for name in re.findall(r"\b((?:jqs|process)_[a-z_]+)", expr)
    }
    assert len(named) >= 10
    assert named <= families, named - families


def test_metrics_can_be_switched_off(dsn: str, start_jqs: StartJqs) -> None:
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY=ADMIN, JQS_METRICS="false")
    with httpx.Client(base_url=proc.url, timeout=10, headers=_auth(ADMIN)) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 404
    assert "JQS_METRICS=false" in answer.json()["detail"]
