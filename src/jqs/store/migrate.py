"""Numbered plain-SQL migrations, applied once under an advisory lock.

Files are `migrations/NNNN_name.sql`. All pending files run in one transaction that first
takes a transaction-scoped advisory lock, so any number of processes starting together
migrate exactly once: the first applies, the rest wait and then find nothing to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from jqs.errors import MigrationError
from jqs.store.db import driver_errors

# An arbitrary constant: the advisory lock key every JQS process agrees on for migrations.
MIGRATION_LOCK_KEY = 0x4A51_5300_0001
# Stubs make both generic; at run time neither is subscriptable, hence the quotes.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Every migration shipped with JQS, in version order."""
    folder = resources.files("jqs.store").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration numbers must run 1..n without gaps, got {versions}")
    return found


async def applied_versions(conn: Connection) -> list[int]:
    """Versions recorded in the tracking table (empty before the first migration)."""
    with driver_errors():
        exists = await conn.fetchval("SELECT to_regclass('jqs_migrations') IS NOT NULL")
        if not exists:
            return []
        rows = await conn.fetch("SELECT version FROM jqs_migrations ORDER BY version")
    return [row["version"] for row in rows]


async def migrate(conn: Connection) -> list[int]:
    """Apply every pending migration; returns the versions this call applied."""
    migrations = load_migrations()
    with driver_errors(MigrationError, "migration failed"):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS jqs_migrations ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM jqs_migrations")}
            newer = sorted(v for v in done if v > len(migrations))
            if newer:
                raise MigrationError(
                    f"the database has migrations {newer} that this JQS does not know; "
                    "run a newer JQS"
                )
            applied: list[int] = []
            for migration in migrations:
                if migration.version in done:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO jqs_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
                applied.append(migration.version)
            return applied
