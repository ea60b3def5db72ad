"""Signing in and out, and the dashboard's own files (served without a session)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, RedirectResponse, Response

from jqs.auth.secrets import secret_hash
from jqs.logging import get_logger
from jqs.ui import session as sessions
from jqs.ui.access import (
    Refused,
    api_state,
    auth_off,
    current,
    secure,
)
from jqs.ui.render import PREFIX, back, page, read_form
from jqs.ui.session import COOKIE, SESSION_SECONDS

log = get_logger(__name__)

STATIC = {
    "htmx.min.js": "text/javascript",
    "ui.css": "text/css",
}
SIGNIN_COOKIE = "jqs_signin"
HERE = Path(__file__).parent

router = APIRouter(prefix=PREFIX, include_in_schema=False)


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
    response = page(
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
    form = await read_form(request)
    sent = request.cookies.get(SIGNIN_COOKIE)
    if not sent or not sessions.same(sent, form.get("token", "")):
        return back(f"{PREFIX}/signin", "the sign-in form expired; try again")
    key = form.get("key", "").strip()
    principal = state.keyring.authenticate(b"Bearer " + key.encode("latin-1", "replace"))
    if not key or principal is None:
        log.info("ui_signin_refused")
        return back(f"{PREFIX}/signin", "this API key is unknown, revoked or expired")
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
    form = await read_form(request)
    visitor = current(request)
    if visitor is not None and not visitor.csrf_ok(form.get("csrf")):
        raise Refused(403, "this form did not come from this dashboard; reload")
    response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX, secure=secure(request), httponly=True)
    return response
