"""`make test` beside other checkouts' test runs: starting one must not break another."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.proc import REPO

PROBE = Path(__file__).resolve().parents[1] / "support" / "side_by_side_probe.py"


@pytest.mark.skipif(
    bool(os.environ.get("JQS_TEST_DATABASE_URL")), reason="no embedded PostgreSQL to lose"
)
@pytest.mark.skipif(
    os.geteuid() != 0,
    reason="only as root does the embedded PostgreSQL run as another user (pgserver)",
)
def test_a_run_keeps_its_database_when_another_run_starts() -> None:
    # A temp root of their own, shared by the two runs as /tmp/pytest-of-root is by all.
    root = Path(tempfile.mkdtemp(prefix="jqs-side-by-side-"))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PROBE)],
            cwd=REPO,
            env={**os.environ, "PYTEST_DEBUG_TEMPROOT": str(root)},
            capture_output=True,
            text=True,
            timeout=100,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout, result.stdout[-4000:]
