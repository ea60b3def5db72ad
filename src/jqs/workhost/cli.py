"""The `jqs` command of the jqs-client distribution: the client's commands (jqs.client.cli)
and `jqs worker`, which runs the application's @task handlers for a JQS server over HTTP.

This module imports only what the client itself needs: `jqs worker` imports the worker side
when it runs, and without it (`jqs-client` installed without its [worker] extra) says so
in one line.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from jqs.client.cli import Exit, fail, register
from jqs.workhost.options import Concurrency, Queues, WorkerKey

WORKER_EXTRA = "pip install 'jqs-client[worker]'"

app = typer.Typer(
    name="jqs",
    help="JQS's client: submit and inspect jobs and queues of a JQS server (JQS_URL), "
    "and run workers for it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
register(app)


@app.command()
def worker(
    url: Annotated[
        str | None,
        typer.Option("--url", help="The JQS server to work for (JQS_URL).", show_default=False),
    ] = None,
    key: WorkerKey = None,
    concurrency: Concurrency = None,
    queues: Queues = None,
) -> None:
    """Run the JQS_TASKS handlers for a JQS server over HTTP, with no database.

    Needs the worker side: the worker extra of jqs-client.
    """
    url = url or os.environ.get("JQS_URL", "").strip()
    if not url:
        raise fail("jqs worker needs --url (or JQS_URL): the JQS server to work for", Exit.INVALID)
    try:
        from jqs.workhost.process import WorkerCommand, run_worker
    except ModuleNotFoundError as exc:
        raise fail(
            f"jqs worker needs the worker side, which is not installed ({exc.name} is "
            f"missing): {WORKER_EXTRA}",
            Exit.INVALID,
        ) from None
    stopped = run_worker(
        WorkerCommand(
            url=url,
            key=key or os.environ.get("JQS_API_KEY"),
            concurrency=concurrency,
            queues=queues,
        )
    )
    if stopped.message is not None:
        typer.echo(f"jqs: {stopped.message}", err=True)
    raise typer.Exit(stopped.code)


def main() -> None:
    """Console-script entry point of jqs-client."""
    app(prog_name="jqs")
