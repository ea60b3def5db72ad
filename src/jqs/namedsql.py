"""Named SQL statements with named parameters, parsed from a file of `-- name:` blocks.

A block starts with `-- name: job_claim`. Parameters are written `:queues` and bound by
name from a dataclass or keywords; `compile_query` turns them into PostgreSQL's `$1, $2,
...` in order of first use. A block whose header says `-- plan: per-value` is marked so
(the store runs it planned for its values).

It imports nothing else of JQS: the store's statements (jqs.store.queries) and the
client's (jqs.client.transaction, which installs without the server) are read by this one
parser.

Each statement also comes as `pyformat`, for drivers that take `%(name)s` (psycopg): the
same text with its parameters so written, and every other `%` doubled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_PLAN = re.compile(r"^--\s*plan:\s*(per-value|generic)\s*$", re.MULTILINE)
_SESSION = re.compile(r"^--\s*session:\s*(\w+)\s*=\s*(\S+)\s*$", re.MULTILINE)
# A parameter: a colon not part of `::` (a cast), then an identifier.
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
# What a parameter can hide in: string literals, quoted identifiers and comments.
_OPAQUE = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*")


@dataclass(frozen=True, slots=True)
class Query:
    """One statement: its text for the driver and the names of its parameters, in order."""

    name: str
    sql: str
    params: tuple[str, ...]
    per_value: bool = False
    pyformat: str = ""  # the text with `%(name)s` parameters (psycopg's)


def compile_query(name: str, text: str, *, per_value: bool = False) -> Query:
    """Turn `:name` parameters into `$n`; the same name is the same `$n` every time."""
    params: list[str] = []

    def number(match: re.Match[str]) -> str:
        param = match[1]
        if param not in params:
            params.append(param)
        return f"${params.index(param) + 1}"

    def pyformat(match: re.Match[str]) -> str:
        return f"%({match[1]})s"

    parts: list[str] = []
    formatted: list[str] = []
    position = 0
    for opaque in [*_OPAQUE.finditer(text), None]:
        end = len(text) if opaque is None else opaque.start()
        plain = text[position:end]
        parts.append(_PARAM.sub(number, plain))
        formatted.append(_PARAM.sub(pyformat, plain.replace("%", "%%")))
        if opaque is not None:
            parts.append(opaque[0])
            formatted.append(opaque[0].replace("%", "%%"))
            position = opaque.end()
    return Query(name, "".join(parts), tuple(params), per_value, "".join(formatted))


def parse_queries(text: str) -> dict[str, Query]:
    """Split a file of `-- name: x` blocks into {name: Query}."""
    parts = _NAME.split(text)
    queries: dict[str, Query] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        plan = _PLAN.search(body)
        per_value = plan is not None and plan[1] == "per-value"
        queries[name] = compile_query(name, body.strip().rstrip(";"), per_value=per_value)
    return queries


def parse_session_settings(text: str) -> dict[str, str]:
    """The `-- session: name = value` lines before the first block."""
    head = _NAME.split(text, maxsplit=1)[0]
    return {match[1]: match[2] for match in _SESSION.finditer(head)}
