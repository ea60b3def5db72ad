from __future__ import annotations

import pytest

from jqs.store.migrate import load_migrations
from jqs.store.queries import parse_queries, queries


def test_named_blocks_are_split() -> None:
    text = "-- name: a\nSELECT 1;\n\n-- name: b\n-- a comment\nSELECT 2;\n"
    assert parse_queries(text) == {"a": "SELECT 1", "b": "-- a comment\nSELECT 2"}


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")


def test_shipped_queries_load_and_are_noun_first() -> None:
    names = queries()
    assert {"job_insert", "job_get", "job_list", "job_claim", "job_complete"} <= set(names)
    assert all(name.startswith(("job_", "queue_", "cron_", "db_")) for name in names)


def test_migrations_are_numbered_without_gaps() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
