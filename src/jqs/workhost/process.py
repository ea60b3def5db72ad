"""The client's `jqs worker` process: its settings, its stop signals, and the worker pool
over HTTP that the server's `jqs worker --url` runs too (jqs.workhost.over_http)."""

from __future__ import annotations

from dataclasses import dataclass

from jqs.errors import ConfigError
from jqs.logging import configure_logging, get_logger
from jqs.worker.http_queue import ServerLink
from jqs.workhost.launch import Stopped, run_process, server_link
from jqs.workhost.over_http import work_over_http
from jqs.workhost.pool import registry_for
from jqs.workhost.settings import WorkerSettings, load_worker_settings
from jqs.workhost.stopping import StopSignals

log = get_logger(__name__)


@dataclass(frozen=True)
class WorkerCommand:
    """What `jqs worker` was told: the server, its key, and settings given as options
    (None: the environment's, as JQS_* variables say)."""

    url: str
    key: str | None
    concurrency: int | None = None
    queues: str | None = None


def run_worker(command: WorkerCommand) -> Stopped:
    """Work for the server until a stop signal; how the process ends."""
    overrides = {"worker_concurrency": command.concurrency, "queues": command.queues}
    try:
        settings = load_worker_settings(**{k: v for k, v in overrides.items() if v is not None})
        server = server_link(command.url, command.key)
    except ConfigError as exc:
        return Stopped(2, str(exc))
    configure_logging(settings.log_level)
    return run_process(_work(settings, server))


async def _work(settings: WorkerSettings, server: ServerLink) -> int:
    signals = StopSignals(shutdown_timeout=settings.shutdown_timeout)
    with signals.handled():
        await work_over_http(server, registry_for(settings), settings, signals.requested)
    log.info("shutdown_complete")
    return 0
