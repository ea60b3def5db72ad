"""The `jqs` commands that talk to a JQS server over HTTP, through jqs.client.

They read JQS_URL and JQS_API_KEY (or --url, --api-key). Each error is one line on stderr,
and the exit code says what kind it was (EXIT_CODES; docs/client.md lists them).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from jqs.client.calls import UNSET
from jqs.client.errors import (
    APIError,
    Conflict,
    Forbidden,
    JQSError,
    NotFound,
    RateLimited,
    TransportError,
    Unauthorized,
    Unavailable,
    ValidationError,
)
from jqs.client.models import Job, JobSpec, JobStatus, Queue
from jqs.client.sync import Client

T = TypeVar("T")


class Exit(enum.IntEnum):
    """What the exit code of a command says."""

    OK = 0
    JOB_FAILED = 1  # the job failed or was cancelled (submit --wait); or another error
    INVALID = 2  # bad usage, or the server refused the request as it stands (400/413/422)
    UNREACHABLE = 3  # the server could not be reached
    UNAUTHORIZED = 4  # 401 or 403: no key, a bad key, or a key without the scope
    NOT_FOUND = 5  # 404
    CONFLICT = 6  # 409: e.g. cancelling a finished job
    BUSY = 7  # 429 or 503, still after the retries
    TIMED_OUT = 8  # submit --wait: the job had not finished in time


EXIT_CODES = {code.value: code.name.lower() for code in Exit}
Url = Annotated[
    str | None, typer.Option("--url", help="The JQS server (JQS_URL).", show_default=False)
]
Key = Annotated[
    str | None, typer.Option("--api-key", help="The API key (JQS_API_KEY).", show_default=False)
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON, for programs.")]
err = Console(stderr=True)
PIPED_WIDTH = 240
jobs_app = typer.Typer(help="List, show, cancel and retry jobs.", no_args_is_help=True)
queues_app = typer.Typer(help="List queues; pause, resume or limit one.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys (admin).", no_args_is_help=True)


def out() -> Console:
    """Standard output; piped, as wide as a table needs (a terminal's width otherwise)."""
    return Console() if sys.stdout.isatty() else Console(width=PIPED_WIDTH)


def fail(message: str, code: Exit) -> typer.Exit:
    """Print `jqs: message` on stderr; the Exit to raise."""
    typer.echo(f"jqs: {message}", err=True)
    return typer.Exit(int(code))


def _explain(error: JQSError) -> tuple[str, Exit]:
    if isinstance(error, TransportError):
        return f"cannot reach the server: {error}", Exit.UNREACHABLE
    if isinstance(error, Unauthorized):
        return f"{error.detail} (401); set JQS_API_KEY or --api-key", Exit.UNAUTHORIZED
    if isinstance(error, Forbidden):
        scope = error.missing_scope
        hint = f"; the key needs the scope {scope}" if scope else ""
        return f"{error.detail} (403){hint}", Exit.UNAUTHORIZED
    kinds: list[tuple[type[APIError], Exit]] = [
        (ValidationError, Exit.INVALID),
        (NotFound, Exit.NOT_FOUND),
        (Conflict, Exit.CONFLICT),
        (RateLimited, Exit.BUSY),
        (Unavailable, Exit.BUSY),
    ]
    for kind, code in kinds:
        if isinstance(error, kind):
            return f"{error.detail} ({error.status})", code
    return str(error), Exit.JOB_FAILED


@contextmanager
def connected(url: str | None, key: str | None) -> Iterator[Client]:
    """A client; any client error becomes its one line and exit code."""
    try:
        with Client(url, key) as client:
            yield client
    except JQSError as error:
        message, code = _explain(error)
        raise fail(message, code) from None


def to_json(value: Any) -> Any:
    """A record (or a list of them) as plain JSON values."""
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(to_json(value), ensure_ascii=False))


def _payload(text: str) -> dict[str, Any]:
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise fail(f"the payload is not JSON: {exc}", Exit.INVALID) from None
    if not isinstance(payload, dict):
        raise fail('the payload must be a JSON object, such as \'{"task": "x"}\'', Exit.INVALID)
    return payload


def _run_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise fail(
            f"--run-at {text!r}: give a time with a zone, such as 2030-01-01T09:00:00Z",
            Exit.INVALID,
        )
    return when


def submit(
    payload: Annotated[
        str,
        typer.Argument(help='The job\'s payload: a JSON object, e.g. \'{"task": "send_email"}\'.'),
    ],
    queue: Annotated[
        str | None, typer.Option(help="Queue (default: the task's, or default).")
    ] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first.")] = None,
    delay: Annotated[float | None, typer.Option(help="Seconds before it may start.")] = None,
    run_at: Annotated[str | None, typer.Option(help="Not before this RFC 3339 time.")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts before it fails.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds one attempt may run.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="The same key again: the same job.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the job; print its result.")
    ] = False,
    wait_timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up after this many seconds.")
    ] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: Key = None,
) -> None:
    """Submit a job; with --wait, show its progress, then print its result.

    With --wait, exit 1 if the job failed or was cancelled, 8 if not done by --wait-timeout.
    """
    body = _payload(payload)
    with connected(url, api_key) as client:
        job = client.submit(
            body,
            queue=queue,
            priority=priority,
            delay=delay,
            run_at=_run_at(run_at),
            max_attempts=max_attempts,
            timeout=timeout,
            idempotency_key=idempotency_key,
        )
        if not wait:
            if as_json:
                echo_json(job)
            else:
                typer.echo(f"job {job.id} queued in {job.queue}")
            return
        job = _follow(client, job, wait_timeout)
    _finish(job, as_json, wait_timeout)


def _follow(client: Client, job: Job, timeout: float | None) -> Job:
    """The job once finished (or when the time is up), with a progress bar meanwhile."""
    started = time.monotonic()
    columns = (
        TextColumn("job {task.fields[job]} {task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        shown = bar.add_task(job.status.value, total=1.0, job=job.id)

        def show(job: Job) -> None:
            report = job.progress
            label = job.status.value if report is None or not report.message else report.message
            done = 1.0 if job.status is JobStatus.COMPLETED else None
            bar.update(
                shown,
                completed=done or (0.0 if report is None else report.progress),
                description=label,
            )
            bar.refresh()  # each report drawn, however soon the next comes

        show(job)
        while not job.finished:
            left = None if timeout is None else timeout - (time.monotonic() - started)
            if left is not None and left <= 0:
                break
            step = 1.0 if left is None else min(1.0, left)
            asked = time.monotonic()
            job = client.get(job.id, wait=step)
            show(job)
            if not job.finished and time.monotonic() - asked < step / 2:
                time.sleep(min(0.5, step))  # a server that answers at once: poll
    return job


def _finish(job: Job, as_json: bool, timeout: float | None) -> None:
    if as_json:
        echo_json(job)
    elif job.status is JobStatus.COMPLETED:
        typer.echo(json.dumps(job.result, ensure_ascii=False))
    if job.status is JobStatus.COMPLETED:
        return
    if not job.finished:
        raise fail(f"job {job.id} is still {job.status.value} after {timeout:g} s", Exit.TIMED_OUT)
    last = job.errors[-1] if job.errors else job.result
    why = None
    if isinstance(last, dict):  # {"type": ..., "error": ...} as the worker records it
        why = ": ".join(str(last[k]) for k in ("type", "error") if last.get(k)) or None
    raise fail(f"job {job.id} {job.status.value}" + (f": {why}" if why else ""), Exit.JOB_FAILED)


def _specs(lines: TextIO) -> Iterator[tuple[int, JobSpec]]:
    options = {f.name for f in dataclasses.fields(JobSpec)} - {"payload"}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        item = _payload(line) if line.strip().startswith("{") else _payload("x")
        inner = item.get("payload")
        if isinstance(inner, dict) and set(item) - {"payload"} <= options:
            try:
                given = {k: v for k, v in item.items() if k != "payload"}
                if "run_at" in given:
                    given["run_at"] = datetime.fromisoformat(given["run_at"])
                yield number, JobSpec(inner, **given)
            except (TypeError, ValueError) as exc:
                raise fail(f"line {number}: {exc}", Exit.INVALID) from None
        else:
            yield number, JobSpec(item)


def submit_many(
    source: Annotated[
        str,
        typer.Argument(
            help="A JSON Lines file, or - for stdin. A line is a payload, or "
            '{"payload": {...}, "queue": ..., ...}: a payload and its options.'
        ),
    ],
    chunk: Annotated[
        int,
        typer.Option(min=1, max=1000, help="Jobs per request (each request is all or nothing)."),
    ] = 500,
    url: Url = None,
    api_key: Key = None,
) -> None:
    """Submit many jobs from JSON Lines, in batches, with a progress bar and a summary."""
    if source == "-":
        lines: TextIO = sys.stdin
        total = None
    else:
        path = Path(source)
        if not path.is_file():
            raise fail(f"no such file: {source}", Exit.INVALID)
        total = sum(1 for line in path.open(encoding="utf-8") if line.strip())
        lines = path.open(encoding="utf-8")
    made: list[int] = []
    started = time.monotonic()
    with (
        connected(url, api_key) as client,
        Progress(console=err, transient=True, disable=not err.is_terminal) as bar,
    ):
        shown = bar.add_task("submitting", total=total)
        batch: list[JobSpec] = []
        try:
            for _, spec in _specs(lines):
                batch.append(spec)
                if len(batch) >= chunk:
                    made += [job.id for job in client.submit_many(batch, chunk=chunk)]
                    bar.update(shown, advance=len(batch))
                    batch = []
            if batch:
                made += [job.id for job in client.submit_many(batch, chunk=chunk)]
                bar.update(shown, advance=len(batch))
        except (typer.Exit, JQSError):
            if made:
                typer.echo(f"jqs: {len(made)} jobs were submitted before the error", err=True)
            raise
    took = time.monotonic() - started
    ids = f" (ids {made[0]} to {made[-1]})" if made else ""
    typer.echo(f"submitted {len(made)} jobs{ids} in {took:.1f} s")


@jobs_app.command("list")
def jobs_list(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many jobs.")] = 20,
    before_id: Annotated[int | None, typer.Option(help="Only jobs with a lower id.")] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: Key = None,
) -> None:
    """List jobs, newest first."""
    found: list[Job] = []
    with connected(url, api_key) as client:
        for page in client.list(
            status=status, task=task, before_id=before_id, page_size=min(limit, 100)
        ):
            found += page[: limit - len(found)]
            if len(found) >= limit:
                break
    if as_json:
        echo_json(found)
        return
    table = Table("id", "status", "task", "queue", "attempts", "created", "progress")
    for job in found:
        progress = "" if job.progress is None else f"{job.progress.progress:.0%}"
        table.add_row(
            str(job.id),
            job.status.value,
            job.task or "",
            job.queue,
            f"{job.attempts}/{job.max_attempts}",
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            progress,
        )
    out().print(table)


def _one(
    action: Callable[[Client], Job], url: str | None, key: str | None, as_json: bool, said: str
) -> None:
    with connected(url, key) as client:
        job = action(client)
    if as_json:
        echo_json(job)
    else:
        typer.echo(f"job {job.id} {said}: {job.status.value}")


JobId = Annotated[int, typer.Argument(help="The job's id.", min=1)]


@jobs_app.command("show")
def jobs_show(job_id: JobId, as_json: AsJson = False, url: Url = None, api_key: Key = None) -> None:
    """Show one job."""
    with connected(url, api_key) as client:
        job = client.get(job_id)
    if as_json:
        echo_json(job)
        return
    table = Table(show_header=False)
    for name, value in to_json(job).items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        table.add_row(name, text)
    out().print(table)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: JobId, as_json: AsJson = False, url: Url = None, api_key: Key = None
) -> None:
    """Cancel a job (a running one stops within about a second)."""
    _one(lambda c: c.cancel(job_id), url, api_key, as_json, "cancel asked")


@jobs_app.command("retry")
def jobs_retry(
    job_id: JobId, as_json: AsJson = False, url: Url = None, api_key: Key = None
) -> None:
    """Run a failed or cancelled job again."""
    _one(lambda c: c.retry(job_id), url, api_key, as_json, "retried")


def _queue_table(queues: list[Queue], rates: dict[str, float] | None = None) -> Table:
    columns = [
        "queue",
        "state",
        "queued",
        "running",
        "completed",
        "failed",
        "oldest wait",
        "workers",
        "limits",
    ]
    if rates is not None:
        columns.append("done/s")
    table = Table(*columns)
    for queue in queues:
        counts = queue.counts
        limits = ", ".join(
            text
            for text in (
                f"concurrency {queue.concurrency_limit}" if queue.concurrency_limit else "",
                f"rate {queue.rate_limit:g}/s" if queue.rate_limit else "",
                f"max queued {queue.max_queued}" if queue.max_queued else "",
            )
            if text
        )
        oldest = queue.oldest_queued_seconds
        row = [
            queue.name,
            "paused" if queue.paused else "active",
            str(counts.get("queued", 0)),
            str(counts.get("processing", 0)),
            str(counts.get("completed", 0)),
            str(counts.get("failed", 0)),
            "" if oldest is None else f"{oldest:.1f} s",
            str(len(queue.workers)),
            limits or "-",
        ]
        if rates is not None:
            rate = rates.get(queue.name)
            row.append("-" if rate is None else f"{rate:.1f}")
        table.add_row(*row)
    return table


@queues_app.command("list")
def queues_list(as_json: AsJson = False, url: Url = None, api_key: Key = None) -> None:
    """List queues: their jobs by status, workers and limits."""
    with connected(url, api_key) as client:
        queues = client.queues()
    if as_json:
        echo_json(queues)
    else:
        out().print(_queue_table(queues))


QueueName = Annotated[str, typer.Argument(help="The queue's name.")]


def _set(name: str, url: str | None, key: str | None, as_json: bool, **changes: Any) -> None:
    with connected(url, key) as client:
        settings = client.set_queue(name, **changes)
    if as_json:
        echo_json(settings)
        return
    state = "paused" if settings.paused else "active"
    typer.echo(
        f"queue {settings.name}: {state}, concurrency {settings.concurrency_limit or '-'}, "
        f"rate {settings.rate_limit or '-'}, max queued {settings.max_queued or '-'}"
    )


@queues_app.command("pause")
def queues_pause(
    name: QueueName, as_json: AsJson = False, url: Url = None, api_key: Key = None
) -> None:
    """Pause a queue: none of its jobs starts until it is resumed."""
    _set(name, url, api_key, as_json, paused=True)


@queues_app.command("resume")
def queues_resume(
    name: QueueName, as_json: AsJson = False, url: Url = None, api_key: Key = None
) -> None:
    """Resume a paused queue."""
    _set(name, url, api_key, as_json, paused=False)


def _limit(text: str | None, kind: Callable[[str], T], option: str) -> T | None:
    if text is None:
        return UNSET  # type: ignore[no-any-return]
    if text.strip().lower() == "none":
        return None
    try:
        return kind(text)
    except ValueError:
        raise fail(
            f"{option} {text!r}: give a number, or none to remove the limit", Exit.INVALID
        ) from None


@queues_app.command("set")
def queues_set(
    name: QueueName,
    concurrency: Annotated[
        str | None, typer.Option(help="Jobs running at once; none: no limit.")
    ] = None,
    rate: Annotated[
        str | None, typer.Option(help="Jobs started per second; none: no limit.")
    ] = None,
    max_queued: Annotated[
        str | None, typer.Option(help="Queued jobs at most; none: no bound.")
    ] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: Key = None,
) -> None:
    """Set or remove a queue's limits (those not given stay as they are)."""
    _set(
        name,
        url,
        api_key,
        as_json,
        concurrency_limit=_limit(concurrency, int, "--concurrency"),
        rate_limit=_limit(rate, float, "--rate"),
        max_queued=_limit(max_queued, int, "--max-queued"),
    )


def top(
    interval: Annotated[
        float, typer.Option(min=0.5, max=3600, help="Seconds between refreshes.")
    ] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one view and exit.")] = False,
    url: Url = None,
    api_key: Key = None,
) -> None:
    """A live view of the queues and how fast their jobs finish (Ctrl-C ends it)."""
    with connected(url, api_key) as client:
        queues = client.queues()
        if once:
            out().print(_queue_table(queues))
            return
        done = _finished(queues)
        seen = time.monotonic()
        with Live(_queue_table(queues, {}), console=out(), auto_refresh=False) as live:
            try:
                while True:
                    time.sleep(interval)
                    queues = client.queues()
                    now, counts = time.monotonic(), _finished(queues)
                    rates = {
                        name: max(0, n - done.get(name, n)) / (now - seen)
                        for name, n in counts.items()
                    }
                    done, seen = counts, now
                    live.update(_queue_table(queues, rates), refresh=True)
            except KeyboardInterrupt:
                pass


def _finished(queues: list[Queue]) -> dict[str, int]:
    return {
        q.name: sum(q.counts.get(s, 0) for s in ("completed", "failed", "cancelled"))
        for q in queues
    }


@keys_app.command("list")
def keys_list(as_json: AsJson = False, url: Url = None, api_key: Key = None) -> None:
    """List every key, revoked and expired ones too (never their secrets)."""
    with connected(url, api_key) as client:
        keys = client.keys()
    if as_json:
        echo_json(keys)
        return
    table = Table("id", "name", "scopes", "queues", "tasks", "expires", "revoked")
    for key in keys:
        table.add_row(
            key.id,
            key.name,
            ",".join(key.scopes),
            ",".join(key.queues or ["any"]),
            ",".join(key.tasks or ["any"]),
            str(key.expires_at or "never"),
            str(key.revoked_at or ""),
        )
    out().print(table)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated, e.g. jobs:submit,jobs:read.")],
    queues: Annotated[str | None, typer.Option(help="Only these queues (comma-separated).")] = None,
    tasks: Annotated[str | None, typer.Option(help="Only these tasks (comma-separated).")] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: Key = None,
) -> None:
    """Create a key and print its secret, shown this once."""

    def names(text: str | None) -> list[str] | None:
        return None if text is None else [n.strip() for n in text.split(",") if n.strip()]

    with connected(url, api_key) as client:
        key = client.create_key(name, names(scopes) or [], queues=names(queues), tasks=names(tasks))
    if as_json:
        echo_json(key)
        return
    typer.echo(f"Created API key {key.id} ({key.name}). Its secret, shown only this once:")
    typer.echo(key.secret)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id.")],
    url: Url = None,
    api_key: Key = None,
) -> None:
    """Revoke a key."""
    with connected(url, api_key) as client:
        client.revoke_key(key_id)
    typer.echo(f"Revoked API key {key_id}.")


def register(app: typer.Typer, *, keys: bool = True) -> None:
    """Add the client commands to `app` (the server's `jqs` has its own `keys`)."""
    app.command()(submit)
    app.command("submit-many")(submit_many)
    app.command()(top)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(queues_app, name="queues")
    if keys:
        app.add_typer(keys_app, name="keys")


app = typer.Typer(
    name="jqs",
    help="JQS's client: submit and inspect jobs and queues of a JQS server (JQS_URL).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
register(app)


def main() -> None:
    """The `jqs` command of the jqs-client distribution."""
    app(prog_name="jqs")
