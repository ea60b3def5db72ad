"""A handler's progress report, checked: `current_job().progress(0.4, "4 of 10", data={...})`.

A report is checked when the handler makes it, so a bad one fails the handler's own line
(ValueError, saying what to change) rather than vanishing later in the worker's writer.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from jqs.jsonutil import InvalidJSON, check_storable, loads
from jqs.models import Progress

# The bounds a report must keep (docs: README, "Reporting progress").
MAX_MESSAGE_CHARS = 1_000
MAX_DATA_BYTES = 8 * 1024  # `data` encoded as compact UTF-8 JSON
MAX_DATA_DEPTH = 32


def make_progress(progress: float, message: str | None, data: dict[str, Any] | None) -> Progress:
    """The report, or ValueError naming the bound it breaks.

    `data` is encoded now and read back: the report holds a copy, so a handler may go on
    changing its own dict (from its thread, too) while the report waits to be written.
    """
    if isinstance(progress, bool) or not isinstance(progress, int | float):
        raise ValueError(f"progress must be a number from 0 to 1, not {type(progress).__name__}")
    if not (math.isfinite(progress) and 0 <= progress <= 1):
        raise ValueError(f"progress must be a number from 0 to 1, not {progress!r}")
    if message is not None:
        if not isinstance(message, str):
            raise ValueError(f"message must be a string or None, not {type(message).__name__}")
        if len(message) > MAX_MESSAGE_CHARS:
            raise ValueError(
                f"message is {len(message)} characters long; at most {MAX_MESSAGE_CHARS} are kept"
            )
        if "\x00" in message:
            raise ValueError("message may not contain NUL (\\x00), which PostgreSQL cannot store")
    return Progress(float(progress), message, None if data is None else _data(data))


def _data(data: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"data must be a JSON object (a dict) or None, not {type(data).__name__}")
    try:
        raw = orjson.dumps(data)
    except TypeError as exc:
        raise ValueError(f"data must be JSON: {exc}") from None
    if len(raw) > MAX_DATA_BYTES:
        raise ValueError(
            f"data is {len(raw)} bytes as JSON; at most {MAX_DATA_BYTES} are kept "
            "(store large results in the job's result instead)"
        )
    try:
        check_storable(data, max_depth=MAX_DATA_DEPTH, raw=raw)
    except InvalidJSON as exc:
        raise ValueError(f"data cannot be stored: {exc}") from None
    copy: dict[str, Any] = loads(raw)
    return copy
