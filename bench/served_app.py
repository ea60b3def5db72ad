"""JQS's API as a plain ASGI app, to serve it with other HTTP servers for `servers` rows.

`jqs serve` builds the API inside its Runner and serves it with uvicorn; this module builds
the same app (settings from the environment, the same store, defaults, limits and NOTIFY on
enqueue) in an ASGI lifespan, so that any ASGI server can serve it. No workers and no
maintenance services run: only the HTTP path is compared.

Each server gets the nearest it has to JQS's connection settings (JQS_MAX_HEADER_BYTES,
JQS_HEADER_TIMEOUT, JQS_KEEP_ALIVE_TIMEOUT, JQS_MAX_CONNECTIONS): plain uvicorn its
keep-alive timeout only (and, with its h11 parser, h11's limit on an incomplete request);
granian a header-read timeout, a read buffer and backpressure;
hypercorn a read timeout and a keep-alive timeout (its incomplete-request size, 16 KiB
by default, has no command-line flag).

    python -m bench.served_app --server uvicorn|uvicorn-h11|uvicorn-guarded|granian|hypercorn \
        --port N
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import uvicorn

from jqs.api.app import create_app
from jqs.api.state import ApiState, Limits
from jqs.http.protocol import ConnectionLimits, guarded_protocol
from jqs.logging import configure_logging
from jqs.runtime import database_for
from jqs.settings import Settings, load_settings
from jqs.store import Database
from jqs.store.notify import Notifier, new_origin
from jqs.tasks.defaults import JobDefaults
from jqs.workhost.pool import registry_for

SERVERS = ("uvicorn", "uvicorn-h11", "uvicorn-guarded", "granian", "hypercorn")

Scope = dict[str, Any]
Message = dict[str, Any]


class ServedApi:
    """An ASGI app that starts JQS's API at lifespan start-up and stops it at shutdown."""

    def __init__(self) -> None:
        self._app: Any = None
        self._db: Database | None = None
        self._notifier: Notifier | None = None

    async def _start(self) -> None:
        settings = load_settings()
        configure_logging(settings.log_level)
        self._db = db = database_for(settings)
        await db.start()
        registry = registry_for(settings)
        self._notifier = notifier = Notifier(db.pool, origin=new_origin(), own_listener=None)
        await notifier.start()
        state = ApiState(
            store=db.store,
            defaults=JobDefaults(
                registry, max_attempts=settings.max_attempts, timeout=settings.job_timeout
            ),
            limits=Limits(
                max_body_bytes=settings.max_body_bytes,
                max_json_depth=settings.max_json_depth,
                page_size_max=settings.page_size_max,
            ),
            on_enqueue=notifier.touch,
        )
        self._app = create_app(state)

    async def _stop(self) -> None:
        if self._notifier is not None:
            await self._notifier.stop()
        if self._db is not None:
            await self._db.stop()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self._start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self._stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self._app(scope, receive, send)


app = ServedApi()


def _uvicorn(port: int, settings: Settings, *, http_impl: str) -> None:
    limits = ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        max_connections=settings.max_connections,
    )
    http: Any = guarded_protocol(limits) if http_impl == "guarded" else http_impl
    config = uvicorn.Config(
        app,
        port=port,
        loop="uvloop",
        http=http,
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=settings.keep_alive_timeout,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        lifespan="on",
    )
    uvicorn.Server(config).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=SERVERS, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    target = "bench.served_app:app"
    settings = load_settings()
    if args.server.startswith("uvicorn"):
        http_impl = {"uvicorn": "httptools", "uvicorn-h11": "h11"}.get(args.server, "guarded")
        _uvicorn(args.port, settings, http_impl=http_impl)
        return
    bindir = os.path.dirname(sys.executable)
    if args.server == "granian":
        argv = [
            os.path.join(bindir, "granian"),
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--no-ws",
            "--http1-header-read-timeout",
            str(int(settings.header_timeout * 1000)),
            "--http1-buffer-size",
            str(max(settings.max_header_bytes, 8192)),
            "--backpressure",
            str(settings.max_connections),
            "--log-level",
            "warning",
            target,
        ]
    else:
        argv = [
            os.path.join(bindir, "hypercorn"),
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            "1",
            "--worker-class",
            "uvloop",
            "--keep-alive",
            str(settings.keep_alive_timeout),
            "--read-timeout",
            str(int(settings.header_timeout)),
            "--log-level",
            "warning",
            target,
        ]
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
