"""Named SQL statements, read once from `queries.sql`."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """Split a file of `-- name: x` blocks into {name: statement}."""
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip().rstrip(";")
    return queries


@cache
def queries() -> dict[str, str]:
    """All named queries of the store."""
    text = resources.files("jqs.store").joinpath("queries.sql").read_text(encoding="utf-8")
    return parse_queries(text)


def q(name: str) -> str:
    """One named query; a KeyError names a typo at import of the caller's tests."""
    return queries()[name]
