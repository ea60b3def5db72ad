"""The embedded PostgreSQL: starts in its data dir, keeps data across restarts, stops."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import psutil

from jqs.store import Database
from tests.support.jobs import add


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


async def test_embedded_start_restart_stop(pg_tmp_path: Path) -> None:
    data_dir = pg_tmp_path / "pgdata"
    db = Database(url=None, data_dir=data_dir)
    await db.start()
    try:
        job = await add(db.store, {"task": "keep me"})
        pid = _postmaster_pid(data_dir)
        assert psutil.pid_exists(pid)
        assert db.dsn is not None
        assert "host=" in db.dsn, "embedded PostgreSQL listens on a Unix socket only"
    finally:
        await db.stop()
    assert not (data_dir / "postmaster.pid").exists()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    again = Database(url=None, data_dir=data_dir)
    await again.start()
    try:
        kept = await again.store.get(job.id)
        assert kept.payload == {"task": "keep me"}
        assert again.dsn is not None
        conn = await asyncpg.connect(again.dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM jqs_migrations") >= 1
        finally:
            await conn.close()
    finally:
        await again.stop()
    assert not (data_dir / "postmaster.pid").exists()
