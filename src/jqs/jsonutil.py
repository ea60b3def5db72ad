"""JSON in and out with orjson, and the checks PostgreSQL's JSONB needs first."""

from __future__ import annotations

from typing import Any

import orjson


class RawJSON(bytes):
    """JSON text that is already serialized; stored as is, never re-encoded."""


class InvalidJSON(ValueError):
    """The text is not JSON that JQS can store; the message says why."""


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises InvalidJSON (NaN, Infinity and lone surrogates are refused)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(str(exc)) from exc


def dumps(value: Any) -> bytes:
    """Serialize to compact UTF-8 JSON bytes."""
    return orjson.dumps(value)


def check_storable(value: Any, *, max_depth: int, raw: bytes | None = None) -> None:
    """Refuse what JSONB cannot hold (`\\u0000`) and nesting deeper than `max_depth`.

    When the raw text is given and has no escaped NUL, the string scan is skipped: a raw
    NUL byte is never valid JSON, so the escape is the only way one can arrive.
    """
    scan_strings = raw is None or b"\\u0000" in raw
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                raise InvalidJSON(f"JSON nesting is deeper than the limit of {max_depth}")
            for key, child in item.items():
                if scan_strings and "\x00" in key:
                    raise InvalidJSON("JSON strings may not contain \\u0000 (NUL)")
                if isinstance(child, dict | list | str):
                    stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                raise InvalidJSON(f"JSON nesting is deeper than the limit of {max_depth}")
            stack.extend(
                (child, depth + 1) for child in item if isinstance(child, dict | list | str)
            )
        elif scan_strings and isinstance(item, str) and "\x00" in item:
            raise InvalidJSON("JSON strings may not contain \\u0000 (NUL)")
