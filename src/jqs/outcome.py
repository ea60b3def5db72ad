"""How an attempt's result or error is turned into JSON the store can keep."""

from __future__ import annotations

import traceback
from typing import Any

import orjson

from jqs.jsonutil import RawJSON

# Enough of a traceback to find the failing line without storing megabytes per attempt.
_TRACEBACK_LIMIT = 4_000


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    return value


def encode_result(value: Any) -> RawJSON:
    """Serialize a handler's return value; raises TypeError when it is not JSON."""
    raw = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    if b"\\u0000" in raw:
        # JSONB cannot store NUL; a handler's text should not fail the job for it.
        raw = orjson.dumps(_strip_nul(value), option=orjson.OPT_NON_STR_KEYS)
    return RawJSON(raw)


def encode_error(
    message: str, *, kind: str, attempt: int, exc: BaseException | None = None, **extra: Any
) -> RawJSON:
    """The JSON kept in `result` (and `errors`) for a failed attempt."""
    error: dict[str, Any] = {"error": message, "type": kind, "attempt": attempt, **extra}
    if exc is not None:
        text = "".join(traceback.format_exception(exc))
        error["traceback"] = text[-_TRACEBACK_LIMIT:]
    return encode_result(error)


def cancelled_result(attempt: int) -> RawJSON:
    """The result of a job that was cancelled (before or during `attempt`)."""
    return encode_error("the job was cancelled", kind="Cancelled", attempt=attempt)
