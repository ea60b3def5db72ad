from __future__ import annotations

import re
from importlib import resources

import pytest

from jqs.store.migrate import load_migrations
from jqs.store.queries import compile_query, parse_queries, parse_session_settings, queries


def test_named_blocks_are_split() -> None:
    text = "-- name: a\nSELECT 1;\n\n-- name: b\n-- a comment\nSELECT 2;\n"
    parsed = parse_queries(text)
    assert {name: q.sql for name, q in parsed.items()} == {
        "a": "SELECT 1",
        "b": "-- a comment\nSELECT 2",
    }


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")


def test_named_parameters_become_numbered_in_order_of_first_use() -> None:
    query = compile_query("q", "SELECT :b::int, :a, :b + 1 WHERE x = :a_long")
    assert query.sql == "SELECT $1::int, $2, $1 + 1 WHERE x = $3"
    assert query.params == ("b", "a", "a_long")


def test_casts_strings_and_comments_are_not_parameters() -> None:
    query = compile_query(
        "q", "SELECT x::text, ':no', \":quoted\" -- :comment\nFROM t WHERE y = :yes"
    )
    assert query.params == ("yes",)
    assert "':no'" in query.sql
    assert '":quoted"' in query.sql
    assert "-- :comment" in query.sql
    assert query.sql.endswith("y = $1")


def test_pyformat_names_the_parameters_and_doubles_every_other_percent() -> None:
    query = compile_query("q", "SELECT :a::int, '5%' -- 1%\nWHERE x LIKE :b || '%' AND y % 2 = :a")
    assert query.pyformat == (
        "SELECT %(a)s::int, '5%%' -- 1%%\nWHERE x LIKE %(b)s || '%%' AND y %% 2 = %(a)s"
    )
    assert query.params == ("a", "b")


def test_plan_marker_and_session_settings() -> None:
    text = "-- session: jit = off\n-- session: a_b = on\n\n-- name: a\n-- plan: per-value\nSELECT 1"
    assert parse_queries(text)["a"].per_value
    assert parse_session_settings(text) == {"jit": "off", "a_b": "on"}


def test_shipped_queries_load_and_are_noun_first() -> None:
    names = queries()
    assert {"job_insert_many", "job_get", "job_list", "job_claim", "job_finish_many"} <= set(names)
    prefixes = ("job_", "queue_", "cron_", "worker_", "key_", "db_", "event_", "webhook_")
    assert all(name.startswith(prefixes) for name in names)
    source = resources.files("jqs.store").joinpath("queries.sql").read_text()
    assert not re.search(r"\$\d", source), "parameters are named, not numbered"
    assert [q.name for q in names.values() if q.per_value] == [
        "job_list",
        "job_list_by_task",
        "queue_counts",
        "job_search",
        "job_search_count",
        "job_throughput",
        "worker_list",
        "webhook_delivery_list",
    ]


def test_migrations_are_numbered_without_gaps() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
