"""The dashboard's pages, under /ui: server-rendered HTML, refreshed by polling (htmx).

Every page answers for the session's API key (jqs.ui.access): what it lists is what that key
may see, and the buttons are those it may press. Actions are forms posted with the
session's CSRF token; each redirects back to a page (post/redirect/get) with a message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from jqs.api.auth import creator
from jqs.api.keys import NewKeyIn
from jqs.api.options import options_from_query, task_of
from jqs.api.problems import ProblemError
from jqs.api.queues import QueuePatch as QueuePatchIn
from jqs.auth.issue import issue_key
from jqs.auth.scopes import Scope
from jqs.auth.secrets import secret_hash
from jqs.errors import JobNotFound, StoreError
from jqs.jsonutil import RawJSON
from jqs.logging import get_logger
from jqs.models import Job, JobFilter, JobStatus, NewJob
from jqs.outcome import cancelled_result
from jqs.store.port import (
    MAX_JOB_ID,
    FindParams,
    JobEventsRead,
    QueuePatch,
    SearchParams,
    ThroughputRead,
)
from jqs.tasks.names import QUEUE_NAME, QUEUE_NAME_RULE
from jqs.ui import session as sessions
from jqs.ui.access import (
    Can,
    Refused,
    SignInFirst,
    api_state,
    auth_off,
    current,
    need,
    need_form,
    secure,
)
from jqs.ui.chart import chart
from jqs.ui.filters import PAGE_SIZE, WINDOW_IDS, FilterError, Filters
from jqs.ui.session import COOKIE, SESSION_SECONDS, Session

log = get_logger(__name__)

PREFIX = "/ui"
HERE = Path(__file__).parent
STATIC = {
    "htmx.min.js": "text/javascript",
    "ui.css": "text/css",
}
# The overview's throughput: the last hour, from the newest finished jobs at most.
THROUGHPUT = ThroughputRead(minutes=60, rows=20_000)
RUNNING_SHOWN = 20
# "Retry / cancel all": jobs taken per statement, and acted on per click at most.
BULK_BATCH = 200
BULK_MAX = 10_000
FORM_MAX_BYTES = 1_048_576
SIGNIN_COOKIE = "jqs_signin"

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["json"] = lambda value: orjson.dumps(
    value, option=orjson.OPT_INDENT_2
).decode()
templates.env.filters["when"] = lambda value: (
    "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
)
templates.env.filters["seconds"] = lambda value: (
    "" if value is None else f"{value:,.0f} s" if value >= 10 else f"{value:.1f} s"
)
router = APIRouter(prefix=PREFIX, include_in_schema=False)


def install(app: FastAPI) -> None:
    """Mount the dashboard on the API's app."""
    app.include_router(router)
    app.add_exception_handler(SignInFirst, _sign_in_first)
    app.add_exception_handler(Refused, _refused)


async def _sign_in_first(request: Request, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = PREFIX
    return RedirectResponse(f"{PREFIX}/signin?{urlencode({'next': target})}", status_code=303)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return _page(
        request,
        current(request),
        "refused.html",
        {"detail": exc.detail, "status_code": exc.status},
        exc.status,
    )


def _page(
    request: Request,
    visitor: Session | None,
    name: str,
    context: dict[str, Any],
    status: int = 200,
) -> HTMLResponse:
    state = api_state(request)
    response = templates.TemplateResponse(
        request,
        name,
        {
            "visitor": visitor,
            "can": Can.of(visitor.principal) if visitor is not None else None,
            "csrf": visitor.csrf if visitor is not None else "",
            "auth_off": auth_off(state),
            "message": request.query_params.get("msg", ""),
            "prefix": PREFIX,
            **context,
        },
        status_code=status,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    return response


def _back(path: str, message: str) -> RedirectResponse:
    joiner = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{joiner}msg={quote(message)}", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    """The posted form (application/x-www-form-urlencoded), bounded in size."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX_BYTES:
            raise Refused(413, f"a form may hold {FORM_MAX_BYTES} bytes at most")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


# Static files and sign-in


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The dashboard's own files (vendored htmx, the stylesheet)."""
    if name not in STATIC:
        return Response(status_code=404)
    return FileResponse(
        HERE / "static" / name,
        media_type=STATIC[name],
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get("/signin")
async def signin_page(request: Request) -> Response:
    """Scope: none. The sign-in form."""
    if auth_off(api_state(request)):
        return RedirectResponse(PREFIX, status_code=303)
    token = sessions.new_token()
    response = _page(
        request,
        None,
        "signin.html",
        {"token": token, "next": request.query_params.get("next", PREFIX)},
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=600,
        path=f"{PREFIX}/signin",
        httponly=True,
        secure=secure(request),
        samesite="strict",
    )
    return response


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Scope: none. Checks the key and starts a session."""
    state = api_state(request)
    if auth_off(state) or state.keyring is None:
        return RedirectResponse(PREFIX, status_code=303)
    form = await _form(request)
    sent = request.cookies.get(SIGNIN_COOKIE)
    if not sent or not sessions.same(sent, form.get("token", "")):
        return _back(f"{PREFIX}/signin", "the sign-in form expired; try again")
    key = form.get("key", "").strip()
    principal = state.keyring.authenticate(b"Bearer " + key.encode("latin-1", "replace"))
    if not key or principal is None:
        log.info("ui_signin_refused")
        return _back(f"{PREFIX}/signin", "this API key is unknown, revoked or expired")
    target = form.get("next", PREFIX)
    if not target.startswith(PREFIX) or target.startswith("//"):
        target = PREFIX
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        sessions.issue(secret_hash(key), principal),
        max_age=SESSION_SECONDS,
        path=PREFIX,
        httponly=True,
        secure=secure(request),
        samesite="strict",
    )
    response.delete_cookie(SIGNIN_COOKIE, path=f"{PREFIX}/signin")
    log.info("ui_signed_in", key_id=principal.id)
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    """Scope: a session. Ends the session in this browser."""
    form = await _form(request)
    visitor = current(request)
    if visitor is not None and not visitor.csrf_ok(form.get("csrf")):
        raise Refused(403, "this form did not come from this dashboard; reload")
    response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX, secure=secure(request), httponly=True)
    return response


# Overview


@router.get("")
async def overview(request: Request) -> Response:
    """Scope jobs:read. Throughput, queues' depth and wait, running jobs, workers."""
    visitor = need(request, Scope.JOBS_READ)
    principal = visitor.principal
    store = api_state(request).store
    minutes = await store.throughput(THROUGHPUT)
    activity = [a for a in await store.queue_activity() if principal.may_use_queue(a.name)]
    running = await store.find(
        FindParams(
            JobFilter(JobStatus.PROCESSING, queues=principal.queues, tasks=principal.tasks),
            limit=RUNNING_SHOWN,
        )
    )
    workers = await store.workers()
    return _page(
        request,
        visitor,
        "overview.html",
        {
            "nav": "overview",
            "chart": chart(minutes, datetime.now(UTC), THROUGHPUT.minutes),
            "throughput": THROUGHPUT,
            "activity": activity,
            "running": running,
            "running_shown": RUNNING_SHOWN,
            "workers": workers,
        },
    )


# Jobs


def _int(value: str | None) -> int | None:
    """A job id from the query string or a form: None unless a number; within bigint."""
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return None if number is None else max(0, min(number, MAX_JOB_ID))


@router.get("/jobs")
async def jobs_page(request: Request) -> Response:
    """Scope jobs:read. Jobs by filter, newest first, a page at a time."""
    visitor = need(request, Scope.JOBS_READ)
    store = api_state(request).store
    filters = Filters.of(request.query_params)
    before = _int(request.query_params.get("before"))
    context: dict[str, Any] = {
        "nav": "jobs",
        "filters": filters,
        "statuses": [s.value for s in JobStatus],
        "jobs": [],
        "error": "",
        "window": None,
        "next_query": "",
        "older_query": "",
        "window_ids": WINDOW_IDS,
    }
    try:
        search = filters.search(visitor.principal)
    except FilterError as exc:
        context["error"] = str(exc)
        return _page(request, visitor, "jobs.html", context, 422)
    if filters.windowed:
        top = _int(request.query_params.get("top")) or await store.job_newest_id() + 1
        floor = max(0, top - 1 - WINDOW_IDS)
        found = await store.job_search(SearchParams(search, floor, before or top, PAGE_SIZE + 1))
        edge = await store.job_search_count(SearchParams(type(search)(), floor, top))
        context["window"] = {"top": top, "floor": floor, "oldest_at": edge.oldest_at}
        if floor > 0:
            context["older_query"] = filters.query(top=floor + 1)
        extra: dict[str, object] = {"top": top}
    else:
        found = await store.find(
            FindParams(
                JobFilter(
                    search.status, search.task, visitor.principal.queues, visitor.principal.tasks
                ),
                limit=PAGE_SIZE + 1,
                before_id=before,
            )
        )
        extra = {}
    if len(found) > PAGE_SIZE:
        found = found[:PAGE_SIZE]
        context["next_query"] = filters.query(before=found[-1].id, **extra)
    context["jobs"] = found
    context["query"] = filters.query(**extra)
    return _page(request, visitor, "jobs.html", context)


def _window(request: Request, top_text: str | None, newest: int) -> tuple[int, int]:
    top = _int(top_text) or newest + 1
    return max(0, top - 1 - WINDOW_IDS), top


@router.get("/jobs/bulk")
async def bulk_page(request: Request) -> Response:
    """Scope jobs:manage. How many jobs an action on every match would touch, to confirm."""
    visitor = need(request, Scope.JOBS_MANAGE)
    store = api_state(request).store
    filters = Filters.of(request.query_params)
    action = request.query_params.get("action", "")
    if action not in ("cancel", "retry"):
        raise Refused(404, "no such action")
    try:
        search = filters.search(visitor.principal)
    except FilterError as exc:
        return _back(f"{PREFIX}/jobs?{filters.query()}", str(exc))
    floor, top = _window(request, request.query_params.get("top"), await store.job_newest_id())
    count = await store.job_search_count(SearchParams(search, floor, top))
    return _page(
        request,
        visitor,
        "bulk.html",
        {
            "nav": "jobs",
            "action": action,
            "filters": filters,
            "count": count,
            "floor": floor,
            "top": top,
            "bulk_max": BULK_MAX,
            "window_ids": WINDOW_IDS,
        },
    )


@router.post("/jobs/bulk")
async def bulk(request: Request) -> Response:
    """Scope jobs:manage. Cancel or retry every match of the confirmed window, in batches."""
    form = await _form(request)
    visitor = need_form(request, Scope.JOBS_MANAGE, form)
    store = api_state(request).store
    filters = Filters.of(form)
    action = form.get("action", "")
    floor, top = _int(form.get("floor")) or 0, _int(form.get("top")) or 0
    if action not in ("cancel", "retry") or top <= floor:
        raise Refused(422, "the form names no action or window; start from the jobs page")
    try:
        search = filters.search(visitor.principal)
    except FilterError as exc:
        return _back(f"{PREFIX}/jobs?{filters.query()}", str(exc))
    changed = unchanged = 0
    cursor = top
    done = False
    while changed + unchanged < BULK_MAX and not done:
        batch = await store.job_search(SearchParams(search, floor, cursor, BULK_BATCH))
        done = len(batch) < BULK_BATCH
        for job in batch[: BULK_MAX - changed - unchanged]:
            change = (
                await store.cancel(job.id, cancelled_result(attempt=0))
                if action == "cancel"
                else await store.retry(job.id)
            )
            if change.changed:
                changed += 1
                if action == "retry":
                    api_state(request).on_enqueue(job.queue)
            else:
                unchanged += 1
        if batch:
            cursor = batch[-1].id
    log.info(
        "ui_bulk", action=action, changed=changed, unchanged=unchanged, key_id=visitor.principal.id
    )
    verb = "cancelled" if action == "cancel" else "retried"
    message = f"{changed} jobs {verb}; {unchanged} could not be (already finished or running)"
    if not done:
        message += f"; stopped after {BULK_MAX} jobs: press again for the rest"
    return _back(f"{PREFIX}/jobs?{filters.query()}", message)


async def _reachable(request: Request, visitor: Session, job_id: int) -> Job:
    try:
        job = await api_state(request).store.get(job_id)
    except JobNotFound:
        raise Refused(404, f"no job has the id {job_id}") from None
    if not visitor.principal.may_touch(job.queue, job.task):
        raise Refused(404, f"no job has the id {job_id}")
    return job


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: int) -> Response:
    """Scope jobs:read. One job: payload, result, progress, errors, events."""
    visitor = need(request, Scope.JOBS_READ)
    state = api_state(request)
    job = state.shown(await _reachable(request, visitor, job_id))
    events = await state.store.events_of_job(JobEventsRead(job_id))
    return _page(request, visitor, "job.html", {"nav": "jobs", "job": job, "events": events})


@router.post("/jobs/{job_id}/cancel")
async def job_cancel(request: Request, job_id: int) -> Response:
    """Scope jobs:manage."""
    visitor = need_form(request, Scope.JOBS_MANAGE, await _form(request))
    await _reachable(request, visitor, job_id)
    change = await api_state(request).store.cancel(job_id, cancelled_result(attempt=0))
    job = change.job
    if not change.changed:
        message = f"job {job_id} is {job.status.value}: nothing to cancel"
    elif job.status is JobStatus.PROCESSING:
        message = f"job {job_id}: its worker was asked to stop it"
    else:
        message = f"job {job_id} cancelled"
    log.info("ui_job_cancel", job_id=job_id, changed=change.changed, key_id=visitor.principal.id)
    return _back(f"{PREFIX}/jobs/{job_id}", message)


@router.post("/jobs/{job_id}/retry")
async def job_retry(request: Request, job_id: int) -> Response:
    """Scope jobs:manage."""
    visitor = need_form(request, Scope.JOBS_MANAGE, await _form(request))
    await _reachable(request, visitor, job_id)
    state = api_state(request)
    change = await state.store.retry(job_id)
    if change.changed:
        state.on_enqueue(change.job.queue)
        message = f"job {job_id} queued again"
    else:
        message = f"job {job_id} is {change.job.status.value}: only failed or cancelled jobs retry"
    log.info("ui_job_retry", job_id=job_id, changed=change.changed, key_id=visitor.principal.id)
    return _back(f"{PREFIX}/jobs/{job_id}", message)


# Submitting


@router.get("/submit")
async def submit_page(request: Request) -> Response:
    """Scope jobs:submit. The form to submit a job."""
    visitor = need(request, Scope.JOBS_SUBMIT)
    return _page(request, visitor, "submit.html", {"nav": "submit", "form": {}, "error": ""})


@router.post("/submit")
async def submit(request: Request) -> Response:
    """Scope jobs:submit. Queues the job, as POST /jobs does."""
    form = await _form(request)
    visitor = need_form(request, Scope.JOBS_SUBMIT, form)
    state = api_state(request)
    principal = visitor.principal
    try:
        try:
            payload = orjson.loads(form.get("payload", ""))
        except orjson.JSONDecodeError as exc:
            raise ProblemError(422, f"the payload is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise ProblemError(422, "the payload must be a JSON object")
        given = {
            name: form[name]
            for name in ("queue", "priority", "delay", "max_attempts", "timeout")
            if form.get(name, "").strip()
        }
        options = options_from_query(given)
        try:
            task = task_of(payload)
        except ValueError as exc:
            raise ProblemError(422, f"payload.task {exc}") from None
        job = NewJob(
            RawJSON(orjson.dumps(payload)),
            options.resolve(task, state.defaults),
            creator(principal),
        )
        if not principal.may_touch(job.options.queue, task):
            raise ProblemError(403, f"API key {principal.id} may not use this queue or task")
        queue, bounds = job.options.queue, state.bounds
        # As POST /jobs: 429 when the queue is full; a bounded queue counts the job until
        # it is settled.
        settle = bounds.settle if bounds is not None and bounds.admit(queue) else None
        try:
            inserted = await state.inserts.submit(job)
        finally:
            if settle is not None:
                settle(queue)
    except ProblemError as exc:
        return _page(
            request,
            visitor,
            "submit.html",
            {"nav": "submit", "form": form, "error": exc.detail},
            exc.status,
        )
    log.info("ui_job_submitted", job_id=inserted.id, key_id=principal.id)
    return _back(f"{PREFIX}/jobs/{inserted.id}", f"job {inserted.id} queued")


# Queues and workers


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
    return _page(
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
    form = await _form(request)
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
        return _back(f"{PREFIX}/queues", f"{name}: {exc.detail}")
    except ValidationError as exc:
        detail = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        return _back(f"{PREFIX}/queues", f"{name}: {detail}")
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
    return _back(f"{PREFIX}/queues", f"{name}: {what}")


@router.get("/workers")
async def workers_page(request: Request) -> Response:
    """Scope jobs:read. The live workers."""
    visitor = need(request, Scope.JOBS_READ)
    workers = await api_state(request).store.workers()
    return _page(request, visitor, "workers.html", {"nav": "workers", "workers": workers})


# Keys


@router.get("/keys")
async def keys_page(request: Request) -> Response:
    """Scope admin. Every key; create and revoke."""
    visitor = need(request, Scope.ADMIN)
    keys = await api_state(request).store.key_list()
    return _page(
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
    form = await _form(request)
    visitor = need_form(request, Scope.ADMIN, form)
    state = api_state(request)
    try:
        wanted = NewKeyIn.model_validate(
            {"name": form.get("name", "").strip(), "scopes": _scopes(form)}
        )
    except ValidationError as exc:
        detail = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        return _back(f"{PREFIX}/keys", f"a key needs a name and at least one scope ({detail})")
    issued = await issue_key(
        state.store, wanted.spec(datetime.now(UTC)), created_by=visitor.principal.id
    )
    if state.keyring is not None:
        state.keyring.add(issued.secret_hash, issued.principal)
    log.info("ui_key_created", new_key_id=issued.key.id, key_id=visitor.principal.id)
    return _page(
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
    visitor = need_form(request, Scope.ADMIN, await _form(request))
    state = api_state(request)
    try:
        key = await state.store.key_revoke(key_id)
    except StoreError as exc:
        return _back(f"{PREFIX}/keys", str(exc))
    if key is None:
        return _back(f"{PREFIX}/keys", f"no API key has the id {key_id}")
    if state.keyring is not None:
        state.keyring.remove(key.id)
    log.info("ui_key_revoked", revoked_key_id=key.id, key_id=visitor.principal.id)
    return _back(f"{PREFIX}/keys", f"key {key.id} revoked")
