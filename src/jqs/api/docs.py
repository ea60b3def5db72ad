"""/docs (Swagger UI) and /redoc (ReDoc), with their files served by JQS itself.

The files come from the fastapi-standalone-docs package, so the pages work without any
other host: offline, or behind a proxy that reaches nothing outside. Only its files are
used: its own set-up replaces FastAPI's page builders for every app in the process.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
OPENAPI_PATH = "/openapi.json"
_FILES = Path(str(files("fastapi_standalone_docs") / "static"))

router = APIRouter(include_in_schema=False)


@router.get(DOCS_PATH)
async def swagger_ui() -> HTMLResponse:
    """Swagger UI: try every operation from the browser."""
    return get_swagger_ui_html(
        openapi_url=OPENAPI_PATH,
        title="JQS - Swagger UI",
        swagger_js_url=f"{DOCS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_PATH}/fastapi/favicon.png",
        # No badge from the public validator service: the page asks nothing of other hosts.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get(REDOC_PATH)
async def redoc() -> HTMLResponse:
    """ReDoc: the reference, on one page."""
    return get_redoc_html(
        openapi_url=OPENAPI_PATH,
        title="JQS - ReDoc",
        redoc_js_url=f"{REDOC_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{DOCS_PATH}/fastapi/favicon.png",
        with_google_fonts=False,
    )


def install_files(app: FastAPI) -> None:
    """Add the pages' files to `app` (built with docs_url=None, redoc_url=None, and this
    module's router included).

    ReDoc's bundle asks for its logo beside the page (/redoc/logo-mini.svg), so each tool's
    files are mounted under its page's own path.
    """
    app.mount(f"{DOCS_PATH}/fastapi", StaticFiles(directory=_FILES / "fastapi"))
    app.mount(DOCS_PATH, StaticFiles(directory=_FILES / "swagger"))
    app.mount(REDOC_PATH, StaticFiles(directory=_FILES / "redoc"))
