"""Reading a job payload from a request: size, media type, JSON, object, storable."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from jqs.api.problems import ProblemError
from jqs.jsonutil import InvalidJSON, RawJSON, check_numbers, check_storable, loads


def _is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refusing more than `max_bytes` without reading it all (413)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ProblemError(413, f"the body is larger than the limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ProblemError(413, f"the body is larger than the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(
    request: Request, *, max_bytes: int, max_depth: int | None
) -> tuple[RawJSON, dict[str, Any]]:
    """The body as JSON text and as parsed, after checking it is one JSON object and, unless
    `max_depth` is None (the caller checks its parts itself), that JSONB can store it."""
    content_type = request.headers.get("content-type", "")
    if not _is_json_media_type(content_type):
        shown = content_type or "none"
        raise ProblemError(
            415, f"send the job as JSON with 'Content-Type: application/json' (got {shown})"
        )
    raw = await read_body(request, max_bytes)
    if not raw.strip():
        raise ProblemError(400, "the body is empty; send a JSON object (the job payload)")
    try:
        value = loads(raw)
    except InvalidJSON as exc:
        raise ProblemError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        kind = "null" if value is None else type(value).__name__
        kind = {
            "list": "array",
            "str": "string",
            "int": "number",
            "float": "number",
            "bool": "boolean",
        }.get(kind, kind)
        raise ProblemError(422, f"the payload must be a JSON object, not {kind}")
    try:
        check_numbers(raw)
    except InvalidJSON as exc:
        raise ProblemError(422, str(exc)) from None
    if max_depth is None:
        return RawJSON(raw), value
    try:
        check_storable(value, max_depth=max_depth, raw=raw)
    except InvalidJSON as exc:
        raise ProblemError(422, str(exc)) from None
    return RawJSON(raw), value
