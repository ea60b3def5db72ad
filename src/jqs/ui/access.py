"""Who is looking at the dashboard, and what they may do there.

Each page names the scope it needs (see docs/ui.md): a visitor without a session is sent to
sign in; a session whose key lacks the scope gets a 403 page. The buttons a page shows come
from the same checks (`Can`), and every POST checks its scope and CSRF token again.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from jqs.api.access_log import KEY_ID
from jqs.api.state import ApiState
from jqs.auth.principal import Principal
from jqs.auth.scopes import Scope
from jqs.ui import session as sessions
from jqs.ui.session import COOKIE, Session


class SignInFirst(Exception):
    """No usable session: the visitor is sent to the sign-in page."""


class Refused(Exception):
    """The session's key may not do this (403), or may not see the job (404)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Can:
    """What the page may offer the visitor."""

    read: bool
    submit: bool
    manage: bool
    queues_admin: bool
    admin: bool

    @classmethod
    def of(cls, principal: Principal) -> Can:
        return cls(
            read=principal.has(Scope.JOBS_READ),
            submit=principal.has(Scope.JOBS_SUBMIT),
            manage=principal.has(Scope.JOBS_MANAGE),
            queues_admin=principal.has(Scope.QUEUES_ADMIN),
            admin=principal.has(Scope.ADMIN),
        )


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.jqs
    return state


def auth_off(state: ApiState) -> bool:
    """Whether every visitor is anonymous (no sign-in)."""
    keys = state.keyring
    return keys is None or (state.open_when_empty and keys.empty)


def current(request: Request) -> Session | None:
    """The visitor's session, if any."""
    state = api_state(request)
    if auth_off(state):
        return sessions.anonymous()
    assert state.keyring is not None
    found = sessions.open_session(request.cookies.get(COOKIE), state.keyring)
    if found is not None:
        request.scope[KEY_ID] = found.principal.id  # the request's access log line names it
    return found


def need(request: Request, scope: Scope) -> Session:
    """The visitor's session, which must carry `scope`."""
    found = current(request)
    if found is None:
        raise SignInFirst()
    if not found.principal.has(scope):
        raise Refused(403, f"API key {found.principal.id} lacks the scope {scope.value}")
    return found


def need_form(request: Request, scope: Scope, form: dict[str, str]) -> Session:
    """`need`, for an action: its form must carry the session's CSRF token."""
    found = need(request, scope)
    if not found.csrf_ok(form.get("csrf")):
        raise Refused(403, "this form has expired or did not come from this dashboard; reload")
    return found


def secure(request: Request) -> bool:
    """Whether the browser reached JQS over TLS (directly, or through a proxy saying so)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"
