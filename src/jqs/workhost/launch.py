"""Running a JQS process from a `jqs` command to its exit: the event loop, the errors that
end it with a message, and the handler threads still running at the end. The server's
`jqs` and the client's share it."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from jqs.errors import ConfigError, JQSError
from jqs.logging import flush_job_events, get_logger
from jqs.worker.http_queue import ServerLink
from jqs.worker.pool import TASK_THREAD_PREFIX

log = get_logger("jqs.cli")


@dataclass(frozen=True)
class Stopped:
    """How the process ends: its exit code, and the message for stderr (if any)."""

    code: int
    message: str | None = None


def server_link(url: str, key: str | None) -> ServerLink:
    """The JQS server at `url`, reached with API key `key`; ConfigError if `url` is no
    http(s) URL."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--url must start with http:// or https://, not {url!r}")
    return ServerLink(url=url, api_key=(key or "").strip() or None)


def run_process(coro: Coroutine[Any, Any, int]) -> Stopped:
    """Run `coro` to its exit code: a ConfigError ends it with 2, another JQSError with 1."""
    try:
        code = run_loop(coro)
    except ConfigError as exc:
        return Stopped(2, str(exc))
    except JQSError as exc:
        return Stopped(1, str(exc))
    exit_past_lingering_handlers(code)
    return Stopped(code)


def run_loop(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # the client's install has no uvloop: asyncio's loop does the same
        return asyncio.run(coro)
    return uvloop.run(coro)


def exit_past_lingering_handlers(code: int) -> None:
    """Exit now if sync handlers are still running in threads after the drain deadline.

    Their jobs were already handed back; Python would otherwise wait for those threads at
    exit, and a handler stuck for an hour would hold the shutdown for an hour.
    """
    lingering = [t.name for t in threading.enumerate() if t.name.startswith(TASK_THREAD_PREFIX)]
    if lingering:
        log.warning("handler_threads_abandoned", threads=lingering)
        flush_job_events()  # os._exit skips atexit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
