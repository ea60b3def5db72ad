"""The composition root of a JQS process: build the parts, run them, stop them in order.

`jqs serve` runs the HTTP API and a worker pool in one process (the seed's shape),
`jqs serve --no-worker` only the API, `jqs worker` only the pool. `jqs worker --url` runs
only the pool too, which then reaches a JQS server over the HTTP worker protocol instead of
the database (jqs.workhost.over_http, which the client's `jqs worker` runs as well): no
database, migrations, maintenance or listener. The first SIGTERM/SIGINT starts a graceful
stop (no new claims or requests, running jobs get JQS_SHUTDOWN_TIMEOUT to finish, the rest
are handed back to the queue); a second one exits at once (jqs.workhost.stopping).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import Callable, Iterator, Sequence

import uvicorn

from jqs.api.app import create_app
from jqs.api.bounds import QueueBounds
from jqs.api.serving import ServedQueues
from jqs.api.state import ApiState, Limits, StreamSettings, WebhookApi
from jqs.auth.keyring import KeyRing
from jqs.auth.startup import AuthMode, auth_mode, is_loopback
from jqs.errors import ConfigError
from jqs.events import EventFeed, FeedSettings
from jqs.http.fds import connection_cap, raise_soft_limit
from jqs.http.protocol import ConnectionLimits, guarded_protocol
from jqs.logging import get_logger
from jqs.maintenance.pruner import Pruner
from jqs.maintenance.rescuer import Rescuer
from jqs.maintenance.scheduler import Scheduler
from jqs.metrics import Exposition, Metrics, NoMetrics
from jqs.remote import ClaimHub, Ends, RemoteWorkers
from jqs.service import Service
from jqs.settings import Settings
from jqs.store import Database
from jqs.store.notify import (
    EVENTS_CHANNEL,
    EVENTS_LISTENER_APP,
    UNNAMED_ENDS,
    Listener,
    Notifier,
    ended_name,
    hear_events,
    new_origin,
)
from jqs.tasks.defaults import JobDefaults
from jqs.tasks.registry import TaskRegistry
from jqs.tasks.schedules import schedules_for
from jqs.tracing import Tracing, tracing_from_env
from jqs.webhooks.dispatcher import Dispatcher
from jqs.worker import WorkerPool
from jqs.worker.http_queue import ServerLink
from jqs.workhost.over_http import work_over_http
from jqs.workhost.pool import pool_settings_for, registry_for, retry_policy_for
from jqs.workhost.stopping import StopSignals

log = get_logger(__name__)


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: the Runner owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """Listen on host:port, or raise ConfigError saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def database_for(settings: Settings) -> Database:
    """The Database these settings describe (external URL or embedded data dir)."""
    return Database(
        url=settings.database_url,
        data_dir=settings.data_dir,
        pool_min=settings.db_pool_min,
        pool_max=settings.db_pool_max,
        connect_timeout=settings.db_connect_timeout,
        command_timeout=settings.db_command_timeout,
        transaction_pooler=settings.database_pooler == "transaction",
    )


def listen_dsn_for(settings: Settings, db: Database) -> str | None:
    """Where this process LISTENs: JQS_LISTEN_URL, else the database itself unless that is
    a transaction-mode pooler (a LISTEN there would hold a server session hostage, and
    notifications would reach whichever client has it next): None, poll only."""
    if settings.listen_url is not None:
        return settings.listen_url
    if settings.database_pooler == "transaction":
        log.info("listen_off", detail="a transaction-mode pooler and no JQS_LISTEN_URL: polling")
        return None
    return db.dsn


def fan_out(callbacks: list[Callable[[], None]]) -> Callable[[], None]:
    """One callable that calls each of `callbacks` (the list may grow later)."""

    def call_each() -> None:
        for callback in callbacks:
            callback()

    return call_each


class Runner:
    """Runs the API and/or the workers until a signal, then stops them gracefully."""

    def __init__(
        self,
        settings: Settings,
        *,
        api: bool = True,
        worker: bool = True,
        server: ServerLink | None = None,
    ) -> None:
        """`server`: run only a worker pool, which reaches that JQS server over HTTP."""
        if not (api or worker):
            raise ConfigError("nothing to run: enable the API, the workers, or both")
        if server is not None and api:
            raise ConfigError("a worker over HTTP runs no API")
        self.settings = settings
        self._api = api
        self._worker = worker
        self._server = server
        self._signals = StopSignals(shutdown_timeout=settings.shutdown_timeout)
        self._stop = self._signals.requested

    async def run(self) -> int:
        """Start everything, wait for a stop signal, stop everything; returns the exit code."""
        settings = self.settings
        with self._signals.handled():
            registry = registry_for(settings)
            if self._server is not None:
                await work_over_http(self._server, registry, settings, self._stop)
            else:
                await self._run_with_database(registry)
        log.info("shutdown_complete")
        return 0

    async def _run_with_database(self, registry: TaskRegistry) -> None:
        sock = bind_socket(self.settings.host, self.settings.port) if self._api else None
        db = database_for(self.settings)
        try:
            await db.start()
            await self._serve(db, registry, sock)
        finally:
            if sock is not None:
                sock.close()
            await db.stop()

    async def _serve(
        self, db: Database, registry: TaskRegistry, sock: socket.socket | None
    ) -> None:
        settings = self.settings
        log.info("tasks_registered", tasks=registry.names())
        defaults = JobDefaults(
            registry, max_attempts=settings.max_attempts, timeout=settings.job_timeout
        )
        metrics = Metrics(registry.names) if settings.metrics else NoMetrics()
        tracing = tracing_from_env()
        if tracing.enabled:
            log.info("tracing_on", detail="spans go where the OTEL_* variables say")
        pool = self._worker_pool(db, registry, metrics, tracing) if self._worker else None
        # Workers elsewhere claim through the API, waiting on the same signals as the pool.
        remote = self._remote_workers(db) if sock is not None else None
        origin = new_origin()
        listen_dsn = listen_dsn_for(settings, db)

        def work_arrived(queue: str | None) -> None:
            if pool is not None:
                pool.notify(queue)
            if remote is not None:
                remote.hub.notify(queue)

        # `enqueued` wakes this process directly; the Listener is for other processes' jobs.
        listener = (
            Listener(listen_dsn, work_arrived, origin=origin)
            if (pool is not None or remote is not None) and listen_dsn is not None
            else None
        )
        notifier = Notifier(db.pool, origin=origin, own_listener=listener)

        def enqueued(queue: str) -> None:
            work_arrived(queue)
            notifier.touch(queue)

        # Events were written: this process's feed reads them at once, other processes'
        # feeds are told. Whatever else follows the log adds itself to `on_events`.
        feed, events_listener = (
            self._feed(db, origin, listen_dsn) if sock is not None else (None, None)
        )
        events_notifier = Notifier(
            db.pool,
            origin=origin,
            own_listener=events_listener,
            channel=EVENTS_CHANNEL,
            application=EVENTS_LISTENER_APP,
            unnamed=UNNAMED_ENDS,
        )
        on_events: list[Callable[[], None]] = [lambda: events_notifier.touch("log")]
        if feed is not None:
            on_events.append(feed.wake)

        # Jobs whose end has committed: this process's waiters for them are answered now,
        # other processes' as soon as the notification names them.
        def ended(job_ids: Sequence[int]) -> None:
            if feed is not None:
                feed.ended(job_ids)
            events_notifier.mention(ended_name(job_id) for job_id in job_ids)

        # Webhook deliveries are sent by every process; this one's events wake its own.
        dispatcher = Dispatcher(db.store, settings.destination_policy, settings.dispatch_settings)
        on_events.append(dispatcher.wake)
        db.store.on_events = fan_out(on_events)
        db.store.on_ended = ended

        # Maintenance runs in every process: workers may all be gone, and someone must take
        # their jobs back. Try-locks in the statements keep the processes from competing.
        services: list[Service] = [
            notifier,
            events_notifier,
            dispatcher,
            Rescuer(
                db.store,
                interval=settings.rescue_interval,
                on_requeue=enqueued,
                metrics=metrics,
            ),
            Scheduler(
                db.store,
                schedules_for(registry, settings.cron_entries),
                defaults,
                on_enqueue=enqueued,
                metrics=metrics,
            ),
        ]
        if settings.retention > 0:
            services.append(
                Pruner(db.store, retention=settings.retention, interval=settings.retention_interval)
            )
        if listener is not None:
            services.append(listener)
        if remote is not None:
            services.append(remote.hub)
        keyring = await self._keyring(db) if sock is not None else None
        if keyring is not None:
            services.append(keyring)
        local = pool.queues if pool is not None else ()
        served = ServedQueues(db.store, local=local) if sock is not None else None
        if served is not None:
            services.append(served)
        bounds = QueueBounds(db.store) if sock is not None else None
        if bounds is not None:
            services.append(bounds)
        if feed is not None:
            services.append(feed)
        for service in services:
            await service.start()
        if pool is not None:
            await pool.start()
        # Everything made so far lives as long as the process: keep it out of the cyclic
        # collector's full passes, whose pauses otherwise show up as latency spikes.
        gc.freeze()
        state = ApiState(
            store=db.store,
            defaults=defaults,
            limits=Limits(
                max_body_bytes=settings.max_body_bytes,
                max_json_depth=settings.max_json_depth,
                page_size_max=settings.page_size_max,
            ),
            on_enqueue=enqueued,
            served=served,
            bounds=bounds,
            keyring=keyring,
            open_when_empty=keyring is not None and is_loopback(settings.host),
            cors_origins=settings.cors_origin_list,
            feed=feed,
            streams=StreamSettings(
                keepalive=settings.sse_keepalive, max_duration=settings.sse_max_duration
            ),
            metrics=metrics,
            exposition=Exposition(metrics, db.store) if settings.metrics else None,
            tracing=tracing,
            webhooks=WebhookApi(
                db.store,
                policy=settings.destination_policy,
                rotation_overlap=settings.webhook_rotation_overlap,
                on_new=dispatcher.arm,
            ),
            remote=remote,
        )
        server: _Server | None = None
        server_task: asyncio.Task[None] | None = None
        if sock is not None:
            config = uvicorn.Config(
                create_app(state),
                http=guarded_protocol(self._connection_limits()),
                timeout_keep_alive=settings.keep_alive_timeout,
                log_config=None,
                log_level=settings.log_level,
                access_log=False,  # jqs.api.access_log writes it, faster
                timeout_graceful_shutdown=max(int(settings.shutdown_timeout), 1),
                lifespan="off",
            )
            server = _Server(config)
            server_task = asyncio.create_task(server.serve(sockets=[sock]), name="jqs-http")
            host, port = sock.getsockname()[:2]
            log.info("api_listening", host=host, port=port, url=f"http://{host}:{port}")
        waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(self._stop.wait())]
        if server_task is not None:
            waiters.append(server_task)  # type: ignore[arg-type]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        state.shutting_down = True
        if feed is not None:
            feed.close()  # waits answer now, streams end (their clients resume elsewhere)
        if remote is not None:
            remote.hub.close()  # waiting claims answer [] now, before the server drains
        stopping: list[asyncio.Future[None] | asyncio.Task[None]] = []
        if server is not None and server_task is not None:
            server.should_exit = True
            stopping.append(server_task)
        if pool is not None:
            stopping.append(asyncio.ensure_future(pool.stop(settings.shutdown_timeout)))
        results = await asyncio.gather(*stopping, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.error("stop_failed", error=repr(result))
        for service in reversed(services):
            await service.stop()
        for waiter in waiters:
            waiter.cancel()
        await asyncio.to_thread(tracing.shutdown)  # the spans still buffered

    def _feed(
        self, db: Database, origin: str, listen_dsn: str | None
    ) -> tuple[EventFeed, Listener | None]:
        """The feed that `?wait` and the event streams of this process's API wait on, and
        its listener for other processes' events (held while the feed is in use; none
        behind a transaction-mode pooler without JQS_LISTEN_URL: the feed polls)."""
        settings = self.settings
        listener = (
            Listener(
                listen_dsn,
                hear_events(
                    lambda: feed.wake(),
                    lambda job_ids: feed.ended(job_ids),
                    lambda: feed.recheck(),
                ),
                origin=origin,
                channel=EVENTS_CHANNEL,
                application=EVENTS_LISTENER_APP,
            )
            if listen_dsn is not None
            else None
        )
        feed = EventFeed(
            db.store,
            FeedSettings(
                poll_interval=settings.events_poll_interval, stream_buffer=settings.sse_buffer
            ),
            listener=listener,
        )
        return feed, listener

    def _connection_limits(self) -> ConnectionLimits:
        """The HTTP server's limits, its connection cap sized to the descriptors it may have."""
        settings = self.settings
        fds = raise_soft_limit()
        cap = connection_cap(settings.max_connections, fds.soft)
        log.info(
            "fd_limit",
            soft_before=fds.soft_before,
            soft=fds.soft,
            hard=fds.hard,
            max_connections=cap,
        )
        if cap < settings.max_connections:
            log.warning(
                "max_connections_lowered",
                wanted=settings.max_connections,
                max_connections=cap,
                reason="the file-descriptor limit is lower; raise `ulimit -n` to allow more",
            )
        return ConnectionLimits(
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.header_timeout,
            max_connections=cap,
        )

    async def _keyring(self, db: Database) -> KeyRing | None:
        """The keys requests are checked against; None when authentication is off.

        Raises ConfigError when this process must not serve (see jqs.auth.startup).
        """
        settings = self.settings
        admin = settings.admin_key.get_secret_value() if settings.admin_key else None
        keyring = KeyRing(db.store, admin_key=admin)
        await keyring.refresh()
        mode = auth_mode(host=settings.host, auth=settings.auth, have_keys=not keyring.empty)
        if mode is AuthMode.OFF:
            log.warning(
                "auth_disabled",
                detail="JQS_AUTH=off: every request is served without an API key",
                host=settings.host,
            )
            return None
        if keyring.empty:
            log.info(
                "auth_open_on_loopback",
                detail="no API key exists, so requests need none on this loopback address; "
                "once a key exists (jqs keys create, or JQS_ADMIN_KEY) every request needs one",
                host=settings.host,
            )
        return keyring

    def _remote_workers(self, db: Database) -> RemoteWorkers:
        settings = self.settings
        return RemoteWorkers(
            queue=db.store,
            hub=ClaimHub(
                db.store,
                poll_interval=settings.poll_interval,
                # Claims waiting on a signal share a few connections, leaving the rest.
                max_claims=max(1, min(4, settings.db_pool_max // 2)),
            ),
            ends=Ends(db.store, policy=retry_policy_for(settings)),
            lease_seconds=settings.lease_seconds,
        )

    def _worker_pool(
        self, db: Database, registry: TaskRegistry, metrics: Metrics, tracing: Tracing
    ) -> WorkerPool:
        return WorkerPool(
            db.store, registry, pool_settings_for(self.settings), metrics=metrics, tracing=tracing
        )
