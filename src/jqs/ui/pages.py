"""The dashboard's pages, under /ui: server-rendered HTML, refreshed by polling (htmx).

Every page answers for the session's API key (jqs.ui.access): what it lists is what that key
may see, and the buttons are those it may press. Actions are forms posted with the
session's CSRF token; each redirects back to a page (post/redirect/get) with a message.
The routes live by area: signin, overview, jobs, submit, admin, hooks.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response

from jqs.ui import admin, hooks, jobs, overview, signin, submit
from jqs.ui.access import Refused, SignInFirst, current
from jqs.ui.render import PREFIX, page


def install(app: FastAPI) -> None:
    """Mount the dashboard on the API's app."""
    for area in (signin, overview, jobs, submit, admin, hooks):
        app.include_router(area.router)
    app.add_exception_handler(SignInFirst, _sign_in_first)
    app.add_exception_handler(Refused, _refused)


async def _sign_in_first(request: Request, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = PREFIX
    signin = f"{PREFIX}/signin?{urlencode({'next': target})}"
    if request.headers.get("hx-request") == "true":
        # A page's live refresh: the whole page goes to sign in, not the refreshed region.
        return Response(status_code=204, headers={"HX-Redirect": signin})
    return RedirectResponse(signin, status_code=303)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return page(
        request,
        current(request),
        "refused.html",
        {"detail": exc.detail, "status_code": exc.status},
        exc.status,
    )
