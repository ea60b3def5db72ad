"""Who is asking, and may they: API keys, scopes, per-key rate limits, the Origin check.

`Guard` runs before every route. It refuses a cross-site request that would change state
(403), finds the request's key (`Authorization: Bearer <secret>`; 401 when missing or not
usable), and holds the key to its rate limit (429). The key's identity goes into the
request's scope, and its id into the request's access log line. Each route then asks for the
scope it needs (`ReadKey` and its kin) and checks queue and task limits with the key it gets (403).

Authentication is off when the process was told so (JQS_AUTH=off), or while no key exists
at all on a process bound to a loopback address: every request is then `anonymous`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from jqs.api.access_log import KEY_ID
from jqs.api.origin import SAFE_METHODS, OriginCheck
from jqs.api.problems import ProblemError
from jqs.api.render import problem
from jqs.auth.keyring import KeyRing
from jqs.auth.principal import ANONYMOUS, Principal, names
from jqs.auth.ratelimit import RateLimiter, retry_after
from jqs.auth.scopes import Scope as KeyScope
from jqs.clock import Clock, SystemClock

PRINCIPAL = "jqs.principal"  # where the request's key lives in its ASGI scope
# Answered to anyone: probes, and the API's own documentation.
PUBLIC_PATHS = frozenset({"/health", "/ready", "/openapi.json", "/docs", "/redoc"})
# The docs pages' own files (jqs.api.docs): ReDoc's sit under /redoc/.
PUBLIC_PREFIXES = ("/docs/", "/redoc/")
SECURITY_SCHEME = "apiKey"
# The dashboard (jqs.ui) signs its visitors in with a session cookie of its own and checks
# each page's scope itself; the Origin check still applies to its forms.
SESSION_PATH = "/ui"
_SESSION_ONLY = Principal(id="dashboard-session", name="dashboard session", scopes=frozenset())


class Guard:
    """ASGI middleware: the Origin check, then the key, then its rate limit."""

    def __init__(
        self,
        app: ASGIApp,
        keys: KeyRing | None,
        *,
        open_when_empty: bool,
        origins: OriginCheck,
        clock: Clock | None = None,
    ) -> None:
        """`keys` None: authentication off. `open_when_empty`: anonymous while no key exists."""
        self.app = app
        self.keys = keys
        self.open_when_empty = open_when_empty
        self.origins = origins
        self.limits = RateLimiter((clock or SystemClock()).monotonic)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if scope["method"] not in SAFE_METHODS:
            refusal = self._cross_site(headers)
            if refusal is not None:
                await problem(403, "Forbidden", refusal)(scope, receive, send)
                return
        path: str = scope["path"]
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        if _dashboard(path):
            scope[PRINCIPAL] = _SESSION_ONLY  # no scope: an API route here would refuse
            await self.app(scope, receive, send)
            return
        principal = self._principal(headers)
        if principal is None:
            await self._unauthorized(headers)(scope, receive, send)
            return
        if principal.rate_limit is not None:
            wait = self.limits.wait(principal.id, principal.rate_limit)
            if wait > 0:
                scope[KEY_ID] = principal.id
                await problem(
                    429,
                    "Too Many Requests",
                    f"API key {principal.id} may make {principal.rate_limit:g} requests per "
                    "second to this server; retry after the time in Retry-After",
                    headers={"Retry-After": retry_after(wait)},
                )(scope, receive, send)
                return
        scope[PRINCIPAL] = principal
        if principal is not ANONYMOUS:
            scope[KEY_ID] = principal.id
        await self.app(scope, receive, send)

    def _principal(self, headers: Iterable[tuple[bytes, bytes]]) -> Principal | None:
        keys = self.keys
        if keys is None or (self.open_when_empty and keys.empty):
            return ANONYMOUS
        for name, value in headers:
            if name == b"authorization":
                return keys.authenticate(value)
        return None

    def _unauthorized(self, headers: Iterable[tuple[bytes, bytes]]) -> Any:
        sent = any(name == b"authorization" for name, _ in headers)
        detail = (
            "this API key is unknown, revoked or expired"
            if sent
            else "this endpoint needs an API key: send the header Authorization: Bearer <key>"
        )
        return problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})

    def _cross_site(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        origin: str | None = None
        hosts: list[str] = []
        for name, value in headers:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name in (b"host", b"x-forwarded-host"):
                hosts.extend(value.decode("latin-1").split(","))
        if origin is None or self.origins.permits(origin, hosts):
            return None
        return (
            f"cross-site requests from {origin} may not change anything here; "
            "list the origin in JQS_CORS_ORIGINS to allow it"
        )


def _dashboard(path: str) -> bool:
    return path == SESSION_PATH or path.startswith(SESSION_PATH + "/")


def principal_of(request: Request) -> Principal:
    """The key the request came with (anonymous when authentication is off)."""
    principal: Principal = request.scope.get(PRINCIPAL, ANONYMOUS)
    return principal


def creator(principal: Principal) -> str | None:
    """What a job records as the API key that created it."""
    return None if principal is ANONYMOUS else principal.id


def require(principal: Principal, scope: KeyScope) -> Principal:
    """`principal`, or 403 naming the scope it lacks."""
    if not principal.has(scope):
        raise ProblemError(
            403,
            f"API key {principal.id} lacks the scope {scope.value}",
            missing_scope=scope.value,
        )
    return principal


def require_queue(principal: Principal, queue: str) -> None:
    """403 unless the key may use `queue`."""
    if not principal.may_use_queue(queue):
        raise ProblemError(
            403,
            f"API key {principal.id} may not use queue {queue!r} "
            f"(its queues: {names(principal.queues)})",
            queue=queue,
        )


def require_task(principal: Principal, task: str | None) -> None:
    """403 unless the key may use `task`."""
    if not principal.may_use_task(task):
        raise ProblemError(
            403,
            f"API key {principal.id} may not use task {task!r} "
            f"(its tasks: {names(principal.tasks)})",
            task=task,
        )


def _scoped(scope: KeyScope) -> Any:
    async def check(request: Request) -> Principal:
        return require(principal_of(request), scope)

    return Depends(check)


# Route parameters: the request's key, which must carry the scope (else 403).
SubmitKey = Annotated[Principal, _scoped(KeyScope.JOBS_SUBMIT)]
ReadKey = Annotated[Principal, _scoped(KeyScope.JOBS_READ)]
ManageKey = Annotated[Principal, _scoped(KeyScope.JOBS_MANAGE)]
QueuesAdminKey = Annotated[Principal, _scoped(KeyScope.QUEUES_ADMIN)]
AdminKey = Annotated[Principal, _scoped(KeyScope.ADMIN)]
MetricsKey = Annotated[Principal, _scoped(KeyScope.METRICS)]
WorkerKey = Annotated[Principal, _scoped(KeyScope.WORKER)]


def scope_doc(scope: KeyScope) -> dict[str, Any]:
    """A route's `openapi_extra`: the scope it needs, stated in its OpenAPI operation."""
    return {"security": [{SECURITY_SCHEME: []}], "x-scope": scope.value}
