"""Queues (pause, resume, limits, who serves them), workers, and API keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from jqs.api.keys import NewKeyIn
from jqs.api.problems import ProblemError
from jqs.api.queues import QueuePatch as QueuePatchIn
from jqs.auth.issue import issue_key
from jqs.auth.scopes import Scope
from jqs.errors import StoreError
from jqs.logging import get_logger
from jqs.port import (
    QueuePatch,
)
from jqs.tasks.names import QUEUE_NAME, QUEUE_NAME_RULE
from jqs.ui.access import (
    Refused,
    api_state,
    need,
    need_form,
)
from jqs.ui.render import PREFIX, back, page, read_form

log = get_logger(__name__)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/queues")
async def queues_page(request: Request) -> Response:
    """Scope jobs:read. Each queue: settings, depth, oldest wait, the workers serving it."""
    visitor = need(request, Scope.JOBS_READ)
    store = api_state(request).store
    principal = visitor.principal
    settings = {s.name: s for s in await store.queue_settings_list()}
    activity = {a.name: a for a in await store.queue_activity()}
    serving: dict[str, list[str]] = {}
    for worker in await store.workers():
        for name in worker.queues:
            serving.setdefault(name, []).append(worker.id)
    names = sorted(
        name
        for name in settings.keys() | activity.keys() | serving.keys()
        if principal.may_use_queue(name)
    )
    return page(
        request,
        visitor,
        "queues.html",
        {
            "nav": "queues",
            "queues": [
                {
                    "name": name,
                    "settings": settings.get(name),
                    "activity": activity.get(name),
                    "workers": serving.get(name, []),
                }
                for name in names
            ],
        },
    )


def _limit(text: str, kind: type[int] | type[float]) -> int | float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ProblemError(422, f"{text!r} is not a number") from None


@router.post("/queues/{name}")
async def queue_update(request: Request, name: str) -> Response:
    """Scope queues:admin. Pause, resume, or set the limits (blank: none)."""
    form = await read_form(request)
    visitor = need_form(request, Scope.QUEUES_ADMIN, form)
    if not QUEUE_NAME.match(name):
        raise Refused(404, QUEUE_NAME_RULE)
    if not visitor.principal.may_use_queue(name):
        raise Refused(403, f"API key {visitor.principal.id} may not use queue {name!r}")
    state = api_state(request)
    try:
        if form.get("op") in ("pause", "resume"):
            wanted: dict[str, Any] = {"paused": form["op"] == "pause"}
        else:
            wanted = {
                "concurrency_limit": _limit(form.get("concurrency_limit", ""), int),
                "rate_limit": _limit(form.get("rate_limit", ""), float),
                "max_queued": _limit(form.get("max_queued", ""), int),
            }
        patch = QueuePatchIn.model_validate(wanted)
    except ProblemError as exc:
        return back(f"{PREFIX}/queues", f"{name}: {exc.detail}")
    except ValidationError as exc:
        detail = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        return back(f"{PREFIX}/queues", f"{name}: {detail}")
    changes = {field: getattr(patch, field) for field in wanted}
    settings = await state.store.queue_update(
        QueuePatch(name=name, **changes, given=frozenset(changes))
    )
    if "paused" in changes and not settings.paused:
        state.on_enqueue(name)
    if "max_queued" in changes and state.bounds is not None:
        await state.bounds.refresh_quietly()
    log.info("ui_queue_updated", queue=name, key_id=visitor.principal.id, **changes)
    what = ("paused" if settings.paused else "resumed") if "paused" in changes else "limits saved"
    return back(f"{PREFIX}/queues", f"{name}: {what}")


@router.get("/workers")
async def workers_page(request: Request) -> Response:
    """Scope jobs:read. The live workers."""
    visitor = need(request, Scope.JOBS_READ)
    workers = await api_state(request).store.workers()
    return page(request, visitor, "workers.html", {"nav": "workers", "workers": workers})


# Keys


@router.get("/keys")
async def keys_page(request: Request) -> Response:
    """Scope admin. Every key; create and revoke."""
    visitor = need(request, Scope.ADMIN)
    keys = await api_state(request).store.key_list()
    return page(
        request,
        visitor,
        "keys.html",
        {
            "nav": "keys",
            "keys": keys,
            "scopes": [s.value for s in Scope],
            "now": datetime.now(UTC),
            "secret": None,
        },
    )


@router.post("/keys")
async def key_create(request: Request) -> Response:
    """Scope admin. Makes a key; its secret is shown on this answer only."""
    form = await read_form(request)
    visitor = need_form(request, Scope.ADMIN, form)
    state = api_state(request)
    try:
        wanted = NewKeyIn.model_validate(
            {"name": form.get("name", "").strip(), "scopes": _scopes(form)}
        )
    except ValidationError as exc:
        detail = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        return back(f"{PREFIX}/keys", f"a key needs a name and at least one scope ({detail})")
    issued = await issue_key(
        state.store, wanted.spec(datetime.now(UTC)), created_by=visitor.principal.id
    )
    if state.keyring is not None:
        state.keyring.add(issued.secret_hash, issued.principal)
    log.info("ui_key_created", new_key_id=issued.key.id, key_id=visitor.principal.id)
    return page(
        request,
        visitor,
        "keys.html",
        {
            "nav": "keys",
            "keys": await state.store.key_list(),
            "scopes": [s.value for s in Scope],
            "now": datetime.now(UTC),
            "secret": issued.secret,
            "created": issued.key,
        },
        201,
    )


def _scopes(form: dict[str, str]) -> list[str]:
    known = {s.value for s in Scope}
    return [value for name, value in form.items() if name.startswith("scope_") and value in known]


@router.post("/keys/{key_id}/revoke")
async def key_revoke(request: Request, key_id: str) -> Response:
    """Scope admin. Revokes a key: refused everywhere within seconds."""
    visitor = need_form(request, Scope.ADMIN, await read_form(request))
    state = api_state(request)
    try:
        key = await state.store.key_revoke(key_id)
    except StoreError as exc:
        return back(f"{PREFIX}/keys", str(exc))
    if key is None:
        return back(f"{PREFIX}/keys", f"no API key has the id {key_id}")
    if state.keyring is not None:
        state.keyring.remove(key.id)
    log.info("ui_key_revoked", revoked_key_id=key.id, key_id=visitor.principal.id)
    return back(f"{PREFIX}/keys", f"key {key.id} revoked")
