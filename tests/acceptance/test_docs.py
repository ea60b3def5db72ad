"""/docs and /redoc from a real `jqs serve`: everything they load comes from JQS itself."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.acceptance.conftest import StartJqs

# What a page loads: <script src>, <link href>, Swagger UI's `url:` and ReDoc's spec-url.
_LOADED = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|\burl: *'([^']*)'""")
_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".svg": ("image/svg+xml",),
    ".json": ("application/json",),
}


def _loaded_by(html: str) -> list[str]:
    return [a or b for a, b in _LOADED.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_docs_page_loads_only_from_jqs(dsn: str, start_jqs: StartJqs, page: str) -> None:
    # A server with a key: the pages and their files are answered to anyone all the same.
    proc = start_jqs(DATABASE_URL=dsn, JQS_ADMIN_KEY="docs-admin-key-0123456789abcdefghijkl")
    with httpx.Client(base_url=proc.url, timeout=30) as client:
        response = client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        loaded = _loaded_by(response.text)
        if page == "/redoc":
            # The ReDoc bundle asks for its logo beside the page.
            loaded.append("/redoc/logo-mini.svg")
        assert "/openapi.json" in loaded
        assert len(loaded) >= 3, loaded
        for url in loaded:
            assert re.match(r"/[^/]", url), f"{url} is not JQS's own"
            asset = client.get(url)
            assert asset.status_code == 200, url
            kind = asset.headers["content-type"].split(";")[0]
            suffix = url[url.rindex(".") :]
            assert kind in _TYPES[suffix], f"{url}: {kind}"
            assert asset.content, url
        assert "fonts.googleapis.com" not in response.text
        if page == "/docs":
            assert '"validatorUrl": null' in response.text, "no badge from another host"
