"""Run by tests/acceptance/test_side_by_side.py as a pytest session of its own, with this
project's conftest: its embedded PostgreSQL must outlive another test run starting beside it.

Not collected by the main run (the name does not match test_*.py); the tests run in order.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from tests.support.pg import PgTestServer


async def test_the_server_is_up(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    await conn.close()


def test_another_run_starts_beside_this_one(tmp_path: Path) -> None:
    """What another checkout's `make test` does first: a pytest session in the same temp root."""
    (tmp_path / "test_other.py").write_text("def test_other(tmp_path):\n    pass\n")
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=60,
    )
    # pytest makes its temp root private (0700) at every session's start: to the server's
    # user (pgserver, when the tests run as root) everything under it is now out of reach.
    assert tmp_path.parents[1].name.startswith("pytest-of-")
    assert tmp_path.parents[1].stat().st_mode & 0o077 == 0


async def test_the_server_survives(pg_server: PgTestServer) -> None:
    admin = await asyncpg.connect(pg_server.admin_dsn)
    try:
        # Every test's DROP DATABASE asks for one; it writes global/pg_control.
        await admin.execute("CHECKPOINT")
    finally:
        await admin.close()
    async with pg_server.database() as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM jobs") == 0
        finally:
            await conn.close()
