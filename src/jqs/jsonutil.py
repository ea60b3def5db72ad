"""JSON in and out with orjson, and the checks PostgreSQL's JSONB needs first."""

from __future__ import annotations

import json
import re
from decimal import Decimal
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


# PostgreSQL's numeric (what JSONB stores numbers as) holds at most this many digits after
# the decimal point; orjson reads 1e-20000 as 0.0, which would hide it.
MAX_NUMBER_SCALE = 16383
# Text that may hold such a number: an exponent of -1000 or below, or a long fraction.
_MAYBE_TINY = re.compile(rb"[eE]-0*[1-9][0-9]{3,}|\.[0-9]{1000,}")


def check_numbers(raw: bytes) -> None:
    """Refuse numbers with more digits after the decimal point than PostgreSQL can store.

    Usual texts are passed by two byte searches; a text that may hold such a number is read
    again with exact decimals, so that a string that merely looks like one is not refused.
    """
    if len(raw) < 1000 and b"e-" not in raw and b"E-" not in raw:
        return
    if _MAYBE_TINY.search(raw) is None:
        return
    stack: list[Any] = [json.loads(raw, parse_float=Decimal)]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, Decimal):
            exponent = item.as_tuple().exponent
            if isinstance(exponent, int) and -exponent > MAX_NUMBER_SCALE:
                shown = f"{item:.3e}"
                raise InvalidJSON(
                    f"the number {shown} has more than {MAX_NUMBER_SCALE} digits after the "
                    "decimal point, which PostgreSQL cannot store; round it or send it as a "
                    "string"
                )


def may_hold_nul(raw: bytes) -> bool:
    """Whether JSON text can decode to a string with NUL: only through the escape, since a
    raw NUL byte is never valid JSON."""
    return b"\\u0000" in raw


def check_storable(
    value: Any, *, max_depth: int, raw: bytes | None = None, scan_strings: bool | None = None
) -> None:
    """Refuse what JSONB cannot hold (`\\u0000`) and nesting deeper than `max_depth`.

    The string scan is skipped when the raw text is given and cannot hold a NUL
    (`may_hold_nul`), or when `scan_strings` (the caller checked the text) says so. `raw`
    must be the text of `value` (or of a document holding it).
    """
    if scan_strings is None:
        scan_strings = raw is None or may_hold_nul(raw)
    if not scan_strings and raw is not None and raw.count(b"{") + raw.count(b"[") <= max_depth:
        return  # each level of nesting opens a bracket: a text with this few is shallow enough
    # Without the string scan only containers need a visit.
    kinds: type | tuple[type, ...] = (dict, list, str) if scan_strings else (dict, list)
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                raise InvalidJSON(f"JSON nesting is deeper than the limit of {max_depth}")
            if scan_strings and any("\x00" in key for key in item):
                raise InvalidJSON("JSON strings may not contain \\u0000 (NUL)")
            for child in item.values():  # a plain loop: most payloads hold no containers
                if isinstance(child, kinds):
                    stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                raise InvalidJSON(f"JSON nesting is deeper than the limit of {max_depth}")
            stack.extend((child, depth + 1) for child in item if isinstance(child, kinds))
        elif "\x00" in item:  # only strings get here, and only when scanning
            raise InvalidJSON("JSON strings may not contain \\u0000 (NUL)")
