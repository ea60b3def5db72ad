"""A worker pool alone, its JobQueue a JQS server's HTTP worker protocol
(jqs.worker.http_queue): no database, migrations, maintenance or listener. The server's
`jqs worker --url` and the client's `jqs worker` both run this."""

from __future__ import annotations

import asyncio
import socket
import uuid

from jqs import __version__
from jqs.errors import ConfigError, ServerRefused, StoreError
from jqs.logging import get_logger
from jqs.models import Lease
from jqs.port import LeaseCheckParams, WorkerBeat
from jqs.tasks.registry import TaskRegistry
from jqs.tasks.schedules import schedules_for
from jqs.tracing import tracing_from_env
from jqs.worker import WorkerPool
from jqs.worker.http_queue import LEASE_MAX, HttpQueue, ServerLink
from jqs.workhost.pool import pool_settings_for
from jqs.workhost.settings import WorkerSettings

log = get_logger(__name__)


async def work_over_http(
    server: ServerLink, registry: TaskRegistry, settings: WorkerSettings, stop: asyncio.Event
) -> None:
    """Run the pool for `server` until `stop` is set, then stop it gracefully (running jobs
    get JQS_SHUTDOWN_TIMEOUT to finish, the rest are handed back)."""
    if settings.lease_seconds > LEASE_MAX:
        raise ConfigError(
            f"JQS_LEASE_SECONDS is at most {LEASE_MAX:g} for a worker over HTTP "
            "(the longest lease the protocol grants)"
        )
    log.info("tasks_registered", tasks=registry.names())
    if schedules_for(registry, []):
        log.warning(
            "schedules_not_run",
            detail="a worker over HTTP runs no schedules: the server runs the @task(cron=...) "
            "schedules of the tasks modules it loads itself (JQS_TASKS)",
        )
    tracing = tracing_from_env()
    host = socket.gethostname()
    queue = HttpQueue(server, host=host)
    pool = WorkerPool(queue, registry, pool_settings_for(settings), tracing=tracing)
    try:
        await _introduce(queue, pool, host, settings.worker_concurrency)
        await pool.start()
        log.info("worker_connected", url=queue.url, worker=pool.worker_id)
        await stop.wait()
        queue.interrupt()  # a claim waiting on the server ends now
        await pool.stop(settings.shutdown_timeout)
    finally:
        await queue.aclose()
        await asyncio.to_thread(tracing.shutdown)


async def _introduce(queue: HttpQueue, pool: WorkerPool, host: str, concurrency: int) -> None:
    """Say the worker is alive: a key the server refuses stops the start (ConfigError);
    a server that cannot be reached yet is tried again by the pool, as it runs."""
    beat = WorkerBeat(
        id=pool.worker_id,
        host=host,
        queues=list(pool.queues),
        version=__version__,
        concurrency=concurrency,
    )
    try:
        await queue.worker_beat(beat)
        # A look at a lease nobody holds: a server older than this worker lacks the route.
        await queue.check_leases(LeaseCheckParams([Lease(1, uuid.uuid4())]))
    except ServerRefused as exc:
        if exc.status in (404, 405):
            raise ConfigError(
                f"the server does not serve what this worker needs ({exc}); "
                "upgrade it to this version of JQS"
            ) from None
        raise ConfigError(f"the server refused this worker: {exc}") from None
    except StoreError as exc:
        log.warning("server_unavailable", error=str(exc), detail="trying again as it runs")
