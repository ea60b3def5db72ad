"""Parts of the OpenAPI document that the routes share: the problem document every error
answers with, and the responses that carry it."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from jqs.api.render import PROBLEM_CONTENT_TYPE

PROBLEM_REF = "#/components/schemas/Problem"
STORABLE_REF = "#/components/schemas/StorableJSON"

# JSONB stores no NUL (U+0000) in any string, keys included.
_NO_NUL: dict[str, Any] = {"type": "string", "pattern": r"^[^\u0000]*$"}

# Any JSON value that PostgreSQL's JSONB can store.
STORABLE_SCHEMA: dict[str, Any] = {
    "title": "StorableJSON",
    "description": "Any JSON value whose strings, keys included, hold no NUL (U+0000).",
    "anyOf": [
        _NO_NUL,
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": STORABLE_REF}},
        {
            "type": "object",
            "propertyNames": _NO_NUL,
            "additionalProperties": {"$ref": STORABLE_REF},
        },
    ],
}

# A job's payload: a JSON object that JSONB can store.
PAYLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "propertyNames": _NO_NUL,
    "additionalProperties": {"$ref": STORABLE_REF},
}

# RFC 9457 problem details, as jqs.api.render.problem writes them.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "What went wrong (RFC 9457); `detail` says what to change.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "always `about:blank`"},
        "title": {"type": "string", "description": "the status code's phrase"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "one entry per invalid field, where there are several",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {"type": "string", "description": "e.g. `jobs[3].payload`"},
                    "msg": {"type": "string"},
                },
            },
        },
        "job_id": {
            "type": "integer",
            "description": "the job that an Idempotency-Key already created",
        },
    },
}

_DESCRIPTIONS = {
    400: "The body is empty or not JSON",
    413: "The body is larger than the limit",
    415: "The body is not sent as JSON",
    422: "A parameter or the body is invalid; `detail` names it",
    404: "No such job",
    409: "The job is not in a state that allows this",
    503: "The database is unavailable or could not complete the request; try again",
}


def problem_response(code: int, description: str | None = None) -> dict[str, Any]:
    """One problem+json response, for an operation's `responses`."""
    phrase = _DESCRIPTIONS.get(code, HTTPStatus(code).phrase)
    return {
        "description": description or phrase,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
    }


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The problem+json responses for these status codes."""
    return {code: problem_response(code) for code in codes}


def json_body(schema: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """An operation's required JSON request body, with the size the server takes."""
    return {
        "required": True,
        "description": f"At most {max_bytes} bytes (413 beyond).",
        "content": {"application/json": {"schema": schema}},
    }
