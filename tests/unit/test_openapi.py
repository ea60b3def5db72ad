"""The OpenAPI document: valid, every reference resolving, bodies, limits and problems."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from jqs.api import idempotency
from jqs.api.app import create_app
from jqs.api.problems import ProblemError
from jqs.api.state import ApiState, Limits
from jqs.store.memory import MemoryStore

LIMITS = Limits(max_body_bytes=5000, max_json_depth=7, page_size_max=33, batch_max_jobs=44)
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(ApiState(store=MemoryStore(), limits=LIMITS)).fastapi.openapi()


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: dict[str, Any], ref: str) -> object:
    assert ref.startswith("#/"), f"{ref}: only references within the document"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert "#/components/schemas/BatchItem" in refs
    assert "#/components/schemas/Problem" in refs
    assert "#/components/schemas/StorableJSON" in refs
    for ref in refs:
        assert isinstance(_resolve(document, ref), dict), ref


def test_every_body_taking_operation_describes_its_body(document: dict[str, Any]) -> None:
    with_body = {name for name, operation in _operations(document) if "requestBody" in operation}
    assert with_body == {
        "POST /jobs",
        "POST /jobs/batch",
        "PATCH /queues/{name}",
        "POST /keys",
        "POST /webhooks",
        "POST /v1/workers/claim",
        "POST /v1/workers/{worker_id}/heartbeat",
        "POST /v1/workers/outcomes",
        "POST /v1/workers/leases",
        "POST /v1/workers/release",
        "POST /v1/jobs/{job_id}/heartbeat",
        "POST /v1/jobs/{job_id}/progress",
        "POST /v1/jobs/{job_id}/complete",
        "POST /v1/jobs/{job_id}/fail",
    }
    for name, operation in _operations(document):
        if name in with_body:
            body = operation["requestBody"]
            assert body["required"] is True, name
            assert "bytes" in body["description"], f"{name}: no size limit stated"
            assert body["content"]["application/json"]["schema"], name


def test_every_error_is_a_problem_document(document: dict[str, Any]) -> None:
    for name, operation in _operations(document):
        responses = operation["responses"]
        codes = {int(code) for code in responses}
        assert any(200 <= code < 300 for code in codes), name
        for code in {code for code in codes if code >= 400}:
            content = responses[str(code)]["content"]
            assert list(content) == ["application/problem+json"], f"{name} {code}"
            assert content["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }
        # /metrics answers from its last reading of the database while it is away.
        if name not in ("GET /health", "GET /metrics"):
            assert 503 in codes, f"{name}: the database may be away"
        if "{" in name:
            assert 422 in codes, f"{name}: a malformed path parameter"
        if "requestBody" in operation:
            assert {400, 413, 415, 422} <= codes, name


def test_the_limits_are_the_servers_own(document: dict[str, Any]) -> None:
    submit = document["paths"]["/jobs"]["post"]
    assert "5000 bytes" in submit["requestBody"]["description"]
    assert "7 levels" in submit["requestBody"]["description"]
    batch = document["paths"]["/jobs/batch"]["post"]["requestBody"]
    assert batch["content"]["application/json"]["schema"]["properties"]["jobs"]["maxItems"] == 44
    assert f"{LIMITS.batch_max_bytes} bytes" in batch["description"]
    complete = document["paths"]["/v1/jobs/{job_id}/complete"]["post"]["requestBody"]
    assert f"{5000 + 16_384} bytes" in complete["description"], "a result as big as a payload"
    outcomes = document["paths"]["/v1/workers/outcomes"]["post"]["requestBody"]
    assert f"{LIMITS.batch_max_bytes} bytes" in outcomes["description"]
    (limit,) = (p for p in document["paths"]["/jobs"]["get"]["parameters"] if p["name"] == "limit")
    assert "33" in limit["description"]
    default = create_app(ApiState(store=MemoryStore())).fastapi.openapi()
    assert (
        default["paths"]["/jobs/batch"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]["properties"]["jobs"]["maxItems"]
        == Limits().batch_max_jobs
    )


def test_parameters_state_their_ranges(document: dict[str, Any]) -> None:
    submit = {p["name"]: p["schema"] for p in document["paths"]["/jobs"]["post"]["parameters"]}
    assert submit["priority"]["type"] == "integer"
    assert (submit["priority"]["minimum"], submit["priority"]["maximum"]) == (-32768, 32767)
    assert submit["max_attempts"]["minimum"] == 1
    assert submit["max_attempts"]["maximum"] == 1000
    assert "anyOf" not in submit["queue"], "a query parameter is left out, never null"
    assert submit["Idempotency-Key"]["maxLength"] == 255
    get_job = {p["name"]: p for p in document["paths"]["/jobs/{job_id}"]["get"]["parameters"]}
    assert set(get_job) == {"job_id", "wait"}
    job_id = get_job["job_id"]
    assert job_id["schema"]["minimum"] == 1
    assert job_id["schema"]["maximum"] == 2**63 - 1
    assert (submit["wait"]["exclusiveMinimum"], submit["wait"]["maximum"]) == (0, 60)
    patch = document["paths"]["/queues/{name}"]["patch"]
    properties = patch["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert set(properties) == {"concurrency_limit", "rate_limit", "paused", "max_queued"}
    bounded = properties["max_queued"]["anyOf"][0]
    assert (bounded["type"], bounded["minimum"]) == ("integer", 1), "bounds stay in the schema"
    batch_item = document["components"]["schemas"]["BatchItem"]
    assert batch_item["not"]["required"] == ["run_at", "delay"]


@pytest.mark.parametrize(
    "key", ["a", "order-1234", "a b", "~!x", "x" * 255, "x" * 256, "", " a", "a ", "é", "a\tb"]
)
def test_the_idempotency_key_pattern_is_what_the_server_takes(key: str) -> None:
    """The header's pattern accepts what the server takes, less the spaces at either end that
    HTTP strips before the server sees them."""
    stated = len(key) <= idempotency.MAX_KEY_LENGTH and re.match(idempotency.KEY_PATTERN, key)
    try:
        taken = idempotency.validate_key(key) == key
    except ProblemError:
        taken = False
    assert bool(stated) == (taken and key == key.strip()), key


def test_a_payload_is_stated_as_what_jsonb_stores(document: dict[str, Any]) -> None:
    submit = document["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    item = document["components"]["schemas"]["BatchItem"]["properties"]["payload"]
    assert submit["schema"] == item
    assert item["type"] == "object"
    no_nul = item["propertyNames"]["pattern"]
    assert re.match(no_nul, "to")
    assert not re.match(no_nul, "t\u0000o")
    storable = _resolve(document, item["additionalProperties"]["$ref"])
    assert isinstance(storable, dict)
    assert {"string", "array", "object"} <= {
        branch["type"] for branch in storable["anyOf"] if isinstance(branch["type"], str)
    }
