"""`jqs keys`: create, list and revoke API keys.

The commands talk to the database directly when they can (DATABASE_URL, or the embedded
server's data directory): that is how the first key is made, before any key exists. With
JQS_URL set and no DATABASE_URL they go over HTTP instead, with an `admin` key from
JQS_API_KEY. JQS_API_KEY is the client's key; the server's own bootstrap key
(JQS_ADMIN_KEY) is never read here, so a narrow client key in `.env` never becomes the
server's admin key, nor the other way round.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Protocol, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from jqs.auth.issue import KeySpec, issue_key
from jqs.auth.scopes import parse_scopes
from jqs.client import Client
from jqs.client import JQSError as ClientError
from jqs.client.cli import to_json
from jqs.errors import ConfigError, JQSError
from jqs.logging import configure_logging
from jqs.models import ApiKey
from jqs.port import Keys, SecretRotation, Webhooks
from jqs.settings import load_settings, parse_duration
from jqs.tasks.names import check_queue_name
from jqs.webhooks import signing

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
T = TypeVar("T")


class KeyStore(Keys, Webhooks, Protocol):
    """What the commands ask of the database."""


CLI_KEY_ID = "cli"  # what keys made with direct database access record as their creator


def _fail(message: str) -> typer.Exit:
    typer.echo(f"jqs keys: {message}", err=True)
    return typer.Exit(1)


def _names(text: str | None, *, queues: bool = False) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise _fail("name at least one queue or task, or leave the option out")
    if queues:
        for name in names:
            try:
                check_queue_name(name)
            except ValueError as exc:
                raise _fail(str(exc)) from None
    return names


def _over_http() -> str | None:
    """JQS_URL, when the commands are to go over HTTP rather than to the database."""
    url = os.environ.get("JQS_URL", "").strip()
    if not url or os.environ.get("DATABASE_URL", "").strip():
        return None
    return url.rstrip("/")


def _with_store(action: Callable[[KeyStore], Awaitable[T]]) -> T:
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    configure_logging("warning")  # the commands' own output only

    async def run() -> T:
        from jqs.runtime import database_for  # the server's parts: only for this command

        db = database_for(settings)
        try:
            await db.start()
            return await action(db.store)
        finally:
            await db.stop()

    try:
        return asyncio.run(run())
    except JQSError as exc:
        raise _fail(str(exc)) from None


def _over(url: str, action: Callable[[Client], Any]) -> Any:
    """What `action` answers through the client, as JSON values."""
    key = os.environ.get("JQS_API_KEY", "").strip()
    if not key:
        raise _fail("JQS_URL is set: also set JQS_API_KEY to a key with the admin scope")
    try:
        with Client(url, key) as client:
            return to_json(action(client))
    except ClientError as exc:
        raise _fail(str(exc)) from None


def _print(keys: list[dict[str, Any]]) -> None:
    table = Table("id", "name", "scopes", "queues", "tasks", "rate", "expires", "revoked")
    for key in keys:
        table.add_row(
            key["id"],
            key["name"],
            ",".join(key["scopes"]),
            ",".join(key["queues"]) if key["queues"] else "any",
            ",".join(key["tasks"]) if key["tasks"] else "any",
            "-" if key["rate_limit"] is None else f"{key['rate_limit']:g}/s",
            str(key["expires_at"] or "never"),
            str(key["revoked_at"] or ""),
        )
    Console().print(table)


def _json(value: object) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(value))
    return loaded


@app.command()
def create(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. ci or billing-service.")],
    scopes: Annotated[
        str,
        typer.Option(
            help="Comma-separated: jobs:submit, jobs:read, jobs:manage, queues:admin, "
            "worker, metrics, admin."
        ),
    ],
    queues: Annotated[
        str | None, typer.Option(help="Only these queues (comma-separated); default: all.")
    ] = None,
    tasks: Annotated[
        str | None, typer.Option(help="Only these tasks (comma-separated); default: all.")
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="Expire after this long: 3600, 30m, 12h, 90d.")
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option(help="Requests per second per JQS process.", min=0.01)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key as JSON.")] = False,
) -> None:
    """Create a key and print its secret, which is shown this once."""
    try:
        wanted = parse_scopes(scopes)
        expires_in = parse_duration(expires) if expires is not None else None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    spec = KeySpec(
        name=name,
        scopes=wanted,
        queues=_names(queues, queues=True),
        tasks=_names(tasks),
        rate_limit=rate_limit,
        expires_at=None
        if expires_in is None
        else datetime.now(UTC) + timedelta(seconds=expires_in),
    )
    url = _over_http()
    if url is not None:
        created = _over(
            url,
            lambda client: client.create_key(
                spec.name,
                [s.value for s in spec.scopes],
                queues=spec.queues,
                tasks=spec.tasks,
                rate_limit=spec.rate_limit,
                expires_in=expires_in,
            ),
        )
    else:

        async def make(store: Keys) -> dict[str, Any]:
            issued = await issue_key(store, spec, created_by=CLI_KEY_ID)
            return {
                **_json(issued.key),
                "secret": issued.secret,
                "webhook_secret": issued.webhook_secret,
            }

        created = _with_store(make)
    if as_json:
        typer.echo(orjson.dumps(created).decode())
        return
    typer.echo(f"Created API key {created['id']} ({created['name']}).")
    typer.echo("Its webhook secret, which signs the callbacks of its jobs, shown only once:")
    typer.echo(created["webhook_secret"])
    typer.echo("Its secret, shown only this once (send it as Authorization: Bearer <secret>):")
    typer.echo(created["secret"])


@app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Print the keys as JSON.")] = False,
) -> None:
    """List every key, revoked and expired ones too (never their secrets)."""
    url = _over_http()
    if url is not None:
        keys: list[dict[str, Any]] = _over(url, lambda client: client.keys())
    else:

        async def read(store: Keys) -> list[ApiKey]:
            return await store.key_list()

        keys = [_json(key) for key in _with_store(read)]
    if as_json:
        typer.echo(orjson.dumps(keys).decode())
    else:
        _print(keys)


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id, e.g. key_3f9a0c1d2e4b.")],
) -> None:
    """Revoke a key: every JQS process refuses it within seconds."""
    url = _over_http()
    if url is not None:
        _over(url, lambda client: client.revoke_key(key_id))
    else:

        async def revoke_in(store: Keys) -> ApiKey | None:
            return await store.key_revoke(key_id)

        if _with_store(revoke_in) is None:
            raise _fail(f"no API key has the id {key_id}")
    typer.echo(f"Revoked API key {key_id}.")


@app.command("rotate-webhook-secret")
def rotate_webhook_secret(
    key_id: Annotated[str, typer.Argument(help="The key's id, e.g. key_3f9a0c1d2e4b.")],
) -> None:
    """Give a key a new webhook secret (printed once); the old one signs too for a while."""
    url = _over_http()
    if url is not None:
        answer = _over(url, lambda client: client.rotate_key_webhook_secret(key_id))
        secret, until = answer["webhook_secret"], answer["previous_secret_until"]
    else:
        secret = signing.new_secret()
        overlap = load_settings().webhook_rotation_overlap

        async def rotate_in(store: Webhooks) -> SecretRotation | None:
            return await store.key_webhook_secret_rotate(key_id, secret, overlap)

        rotation = _with_store(rotate_in)
        if rotation is None:
            raise _fail(f"no API key has the id {key_id}")
        until = rotation.previous_until
    typer.echo(f"New webhook secret of API key {key_id}, shown only this once:")
    typer.echo(secret)
    if until is not None:
        typer.echo(f"The old one signs as well until {until}.")
