"""The client's records are the server's: each is held to the schema of the same name in
the server's OpenAPI document, and the client's bounds to the server's."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import jqs
from jqs.api import options
from jqs.api.app import create_app
from jqs.api.state import ApiState, Limits
from jqs.client import models
from jqs.client import transaction as client_enqueue
from jqs.client.version import VERSION
from jqs.models import EventType, JobStatus
from jqs.store.memory import MemoryStore
from jqs.store.notify import CHANNEL
from jqs.tasks.names import QUEUE_NAME

# The client's record for each of the document's schemas.
PAIRS = [
    (models.Job, "Job"),
    (models.Queue, "QueueOut"),
    (models.QueueSettings, "QueueSettingsOut"),
    (models.ApiKey, "ApiKey"),
    (models.CreatedKey, "CreatedKey"),
]


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    document = create_app(ApiState(store=MemoryStore(), limits=Limits())).fastapi.openapi()
    found: dict[str, Any] = document["components"]["schemas"]
    return found


@pytest.mark.parametrize(("record", "schema"), PAIRS)
def test_each_record_has_the_fields_of_its_schema(
    schemas: dict[str, Any], record: type, schema: str
) -> None:
    names = {f.name for f in dataclasses.fields(record)}
    assert names == set(schemas[schema]["properties"])
    # What the client cannot do without, the server always sends.
    needed = {
        f.name
        for f in dataclasses.fields(record)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    assert needed <= set(schemas[schema]["required"])


def test_the_enums_have_the_servers_values(schemas: dict[str, Any]) -> None:
    assert [s.value for s in models.JobStatus] == schemas["JobStatus"]["enum"]
    assert [s.value for s in models.JobStatus] == [s.value for s in JobStatus]
    assert [t.value for t in models.EventType] == [t.value for t in EventType]
    assert {t.value for t in models.EventType if t.final} == {t.value for t in EventType if t.final}


def test_an_event_has_the_fields_of_the_event_json() -> None:
    names = {f.name for f in dataclasses.fields(models.Event)} - {"cursor"}
    assert names == {"id", "type", "job_id", "queue", "task", "at", "data"}


def test_enqueue_holds_jobs_to_the_bounds_of_post_jobs() -> None:
    assert client_enqueue.QUEUE_NAME.pattern == QUEUE_NAME.pattern
    assert (client_enqueue.PRIORITY_MIN, client_enqueue.PRIORITY_MAX) == (
        options.PRIORITY_MIN,
        options.PRIORITY_MAX,
    )
    assert client_enqueue.MAX_ATTEMPTS == options.MAX_ATTEMPTS
    assert client_enqueue.MAX_TIMEOUT == options.MAX_TIMEOUT
    assert client_enqueue.MAX_DELAY == options.MAX_DELAY
    assert client_enqueue.MAX_TASK_LENGTH == options.MAX_TASK_LENGTH
    assert client_enqueue.CHANNEL == CHANNEL


def test_the_client_and_the_server_share_a_version() -> None:
    assert jqs.__version__ == VERSION
    assert jqs.enqueue is client_enqueue.enqueue
