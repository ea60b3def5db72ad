"""How an attempt ends, and the JSON the store keeps for it.

    Outcome
    ├── Completed     the handler returned; its value is the job's result
    ├── Retry         it failed and attempts remain: queued again after `delay` seconds
    ├── Failed        it failed for good; the error is the job's result
    ├── Cancelled     someone asked, and the handler was stopped (or never started)
    ├── LeaseLost     another worker owns the job now: nothing is written
    └── HandedBack    the process is stopping: the job goes back, the attempt uncounted

The first four are `Final`: written by one batched writer, each write fenced by the lease.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

import orjson

from jqs.jsonutil import RawJSON

# Enough of a traceback to find the failing line without storing megabytes per attempt.
_TRACEBACK_LIMIT = 4_000


@dataclass(frozen=True, slots=True)
class AttemptError:
    """Why an attempt failed: for logs (message, kind) and as stored (`json`)."""

    message: str
    kind: str
    json: RawJSON


@dataclass(frozen=True, slots=True)
class Completed:
    """The handler returned `result`."""

    result: RawJSON


@dataclass(frozen=True, slots=True)
class Retry:
    """The attempt failed, or its handler asked to run again later (`requested`, with
    RetryLater); the job runs again in `delay` seconds."""

    error: AttemptError
    delay: float
    requested: bool = False


@dataclass(frozen=True, slots=True)
class Failed:
    """The attempt failed and the job will not run again."""

    error: AttemptError


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The job was cancelled while it ran; `result` says so."""

    result: RawJSON


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """The lease ended under the attempt: the job belongs to someone else now."""


@dataclass(frozen=True, slots=True)
class HandedBack:
    """The process is stopping: the job goes back to the queue, the attempt not counted."""


Final = Completed | Retry | Failed | Cancelled
Outcome = Final | LeaseLost | HandedBack


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


def attempt_error(
    message: str,
    *,
    kind: str,
    attempt: int,
    exc: BaseException | None = None,
    trace: str | None = None,
    **extra: Any,
) -> AttemptError:
    """The error of a failed attempt, as kept in `result` (and `errors`); its traceback
    from `exc`, or `trace` as a worker elsewhere wrote it."""
    error: dict[str, Any] = {"error": message, "type": kind, "attempt": attempt, **extra}
    if exc is not None:
        trace = "".join(traceback.format_exception(exc))
    if trace:
        error["traceback"] = trace[-_TRACEBACK_LIMIT:]
    return AttemptError(message, kind, encode_result(error))


def cancelled_result(attempt: int) -> RawJSON:
    """The result of a job that was cancelled (before or during `attempt`)."""
    return attempt_error("the job was cancelled", kind="Cancelled", attempt=attempt).json
