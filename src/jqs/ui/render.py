"""How the dashboard's pages are answered: templates, their common context and headers,
the redirect after an action, and the posted form."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import orjson
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse, RedirectResponse

from jqs.ui.access import Can, Refused, api_state, auth_off
from jqs.ui.session import Session

PREFIX = "/ui"
HERE = Path(__file__).parent
FORM_MAX_BYTES = 1_048_576

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


def page(
    request: Request,
    visitor: Session | None,
    name: str,
    context: dict[str, Any],
    status: int = 200,
) -> HTMLResponse:
    """The page `name` for `visitor`, with what every page shows."""
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


def back(path: str, message: str) -> RedirectResponse:
    """The redirect to `path` after an action, with its message."""
    joiner = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{joiner}msg={quote(message)}", status_code=303)


async def read_form(request: Request) -> dict[str, str]:
    """The posted form (application/x-www-form-urlencoded), bounded in size."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX_BYTES:
            raise Refused(413, f"a form may hold {FORM_MAX_BYTES} bytes at most")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
