"""The store's named SQL statements, read once from `queries.sql` (parsed by jqs.namedsql).

A block whose header says `-- plan: per-value` runs in a read-only transaction planned for
its values (see `db_plan_per_value`); every other statement runs with the session settings
stated at the top of `queries.sql`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from jqs.namedsql import Query, compile_query, parse_queries, parse_session_settings

__all__ = ["Query", "compile_query", "parse_queries", "parse_session_settings", "q", "queries"]


def _text() -> str:
    return resources.files("jqs.store").joinpath("queries.sql").read_text(encoding="utf-8")


@cache
def queries() -> dict[str, Query]:
    """All named queries of the store."""
    return parse_queries(_text())


@cache
def session_settings() -> dict[str, str]:
    """The settings every store connection runs with, as `queries.sql` states them."""
    return parse_session_settings(_text())


def q(name: str) -> Query:
    """One named query."""
    return queries()[name]
