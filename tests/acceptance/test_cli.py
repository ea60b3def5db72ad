"""The real `jqs` command: version, migrate (alone and ten at once), clear start-up errors."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg

from jqs import __version__
from jqs.store.migrate import load_migrations
from tests.support.pg import PgTestServer
from tests.support.proc import jqs_env, run_jqs


def test_version(tmp_path: Path) -> None:
    result = run_jqs("--version", env=jqs_env(), cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"jqs {__version__}"


def _one_clear_line(result: subprocess.CompletedProcess[str], code: int, start: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(start), lines[0]


def test_invalid_setting_stops_startup_with_one_line(tmp_path: Path) -> None:
    result = run_jqs("serve", env=jqs_env(JQS_WORKER_CONCURRENCY="0"), cwd=tmp_path)
    _one_clear_line(result, 2, "jqs: invalid setting JQS_WORKER_CONCURRENCY:")
    result = run_jqs("serve", env=jqs_env(PORT="http"), cwd=tmp_path)
    _one_clear_line(result, 2, "jqs: invalid setting PORT:")


def test_unimportable_tasks_module_is_a_setting_error(tmp_path: Path) -> None:
    result = run_jqs("worker", env=jqs_env(JQS_TASKS="nowhere.tasks"), cwd=tmp_path)
    _one_clear_line(result, 2, "jqs: invalid setting JQS_TASKS: cannot import 'nowhere.tasks'")


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    env = jqs_env(
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/x", JQS_DB_CONNECT_TIMEOUT="1"
    )
    result = run_jqs("migrate", env=env, cwd=tmp_path)
    _one_clear_line(result, 1, "jqs: database unavailable")


def test_port_in_use_is_one_line(tmp_path: Path, dsn: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env = jqs_env(DATABASE_URL=dsn, PORT=str(port), JQS_HOST="127.0.0.1")
        result = run_jqs("serve", env=env, cwd=tmp_path)
    _one_clear_line(result, 2, f"jqs: cannot listen on 127.0.0.1:{port}")


async def test_migrate_twice(tmp_path: Path, pg_server: PgTestServer) -> None:
    async with pg_server.database(migrated=False) as dsn:
        env = jqs_env(DATABASE_URL=dsn)
        for _ in range(2):
            result = await asyncio.to_thread(run_jqs, "migrate", env=env, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            assert "up to date" in result.stdout


async def test_ten_processes_migrate_an_empty_database_once(
    tmp_path: Path, pg_server: PgTestServer
) -> None:
    async with pg_server.database(migrated=False) as dsn:
        env = jqs_env(DATABASE_URL=dsn)
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "jqs",
                "migrate",
                env=env,
                cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(10)
        ]
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 60)
        assert [p.returncode for p in procs] == [0] * 10, outputs
        applied = []
        for out, _ in outputs:
            for line in out.decode().splitlines():
                if line.startswith("{") and json.loads(line).get("event") == "migrations_checked":
                    applied.append(json.loads(line)["applied"])
        expected = [m.version for m in load_migrations()]
        assert sorted(applied, key=len) == [[]] * 9 + [expected], applied
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT version FROM jqs_migrations ORDER BY version")
        finally:
            await conn.close()
        assert [r["version"] for r in rows] == expected
