"""The `jqs` command: serve (default), worker, migrate, keys, --version; and the client's
commands (submit, submit-many, jobs, queues, top: jqs.client.cli), which go over HTTP.

The server's parts (jqs.runtime, the worker) are imported by the commands that run them,
not here: a client command then starts in a fraction of the time."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jqs import __version__
from jqs.client.cli import register as register_client_commands
from jqs.errors import ConfigError, JQSError
from jqs.keys_cli import app as keys_app
from jqs.logging import configure_logging
from jqs.settings import Settings, load_settings
from jqs.workhost.options import Concurrency, Queues, WorkerKey

if TYPE_CHECKING:
    from jqs.worker.http_queue import ServerLink

app = typer.Typer(
    name="jqs",
    help="JQS: a PostgreSQL-backed job queue service.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(keys_app, name="keys")
register_client_commands(app, keys=False)  # `keys` above also works without a server


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"jqs: {message}", err=True)
    return typer.Exit(code)


def _settings(**overrides: Any) -> Settings:
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    configure_logging(settings.log_level)
    return settings


def _run_service(
    settings: Settings, *, api: bool, worker: bool, server: ServerLink | None = None
) -> None:
    try:
        from jqs.runtime import Runner
        from jqs.workhost.launch import run_process

        stopped = run_process(Runner(settings, api=api, worker=worker, server=server).run())
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    if stopped.message is not None:
        raise _fail(stopped.message, stopped.code)
    raise typer.Exit(stopped.code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"jqs {__version__}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """With no command, `jqs` runs `jqs serve`."""
    if ctx.invoked_subcommand is None:
        _run_service(_settings(), api=True, worker=True)


@app.command()
def serve(
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Also run workers in this process.")
    ] = True,
    host: Annotated[str | None, typer.Option(help="Bind address (JQS_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (PORT).")] = None,
    concurrency: Concurrency = None,
    queues: Queues = None,
) -> None:
    """Run the HTTP API and, unless --no-worker, a worker pool."""
    settings = _settings(host=host, port=port, worker_concurrency=concurrency, queues=queues)
    _run_service(settings, api=True, worker=worker)


def _server_link(url: str | None, key: str | None, settings: Settings) -> ServerLink | None:
    """The JQS server to work for over HTTP: --url, or JQS_URL when no database is set
    (as `jqs keys` decides); None: work from the database."""
    if url is None:
        from_env = os.environ.get("JQS_URL", "").strip()
        if not from_env or settings.database_url is not None:
            return None
        url = from_env
    from jqs.workhost.launch import server_link

    try:
        return server_link(url, key or os.environ.get("JQS_API_KEY"))
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None


@app.command()
def worker(
    concurrency: Concurrency = None,
    queues: Queues = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Work for this JQS server over HTTP, without a database (JQS_URL).",
            show_default=False,
        ),
    ] = None,
    key: WorkerKey = None,
) -> None:
    """Run only a worker pool (no HTTP API): on the database, or with --url over HTTP."""
    settings = _settings(worker_concurrency=concurrency, queues=queues)
    server = _server_link(url, key, settings)
    if server is None and key is not None:
        raise _fail("--key goes with --url (or JQS_URL)", 2)
    _run_service(settings, api=False, worker=True, server=server)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date, then exit."""
    settings = _settings()

    from jqs.workhost.launch import run_loop

    async def _migrate() -> int:
        from jqs.runtime import database_for

        db = database_for(settings)
        try:
            await db.start(apply_migrations=True)
        finally:
            await db.stop()
        return 0

    try:
        code = run_loop(_migrate())
    except JQSError as exc:
        raise _fail(str(exc), 1) from None
    typer.echo("jqs: the database schema is up to date")
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="jqs")


if __name__ == "__main__":  # pragma: no cover
    main()
