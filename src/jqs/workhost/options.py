"""The options `jqs worker` takes in both distributions (and `jqs serve` shares the first
two): one definition, so the two commands cannot drift apart."""

from __future__ import annotations

from typing import Annotated

import typer

Concurrency = Annotated[int | None, typer.Option(help="Concurrent jobs (JQS_WORKER_CONCURRENCY).")]
Queues = Annotated[str | None, typer.Option(help="Comma-separated queues to serve (JQS_QUEUES).")]
WorkerKey = Annotated[
    str | None,
    typer.Option(
        "--key",
        "--api-key",
        help="With --url: an API key with the worker scope (JQS_API_KEY).",
        show_default=False,
    ),
]
