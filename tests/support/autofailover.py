"""A pg_auto_failover cluster on localhost ports: a monitor, a primary and a synchronous
secondary, each a `pg_autoctl ... --run` of its own, in a temporary directory.

pg_autoctl and PostgreSQL refuse to run as root: when the tests run as root the cluster runs
as the `postgres` user (runuser). Debian's packages are installed when missing and apt can;
`why_not()` names what is missing otherwise.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("postgresql-15-auto-failover", "pg-auto-failover-cli")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
RUN_AS = "postgres"

# The monitor's defaults wait 20 s before calling a node unhealthy and 30 s for a lost
# primary to demote itself; shorter here so that a crash fails over in seconds.
MONITOR_SETTINGS = {
    "pgautofailover.health_check_period": "1s",
    "pgautofailover.health_check_retry_delay": "1s",
    "pgautofailover.health_check_timeout": "2s",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.node_considered_unhealthy_timeout": "4s",
    "pgautofailover.primary_demote_timeout": "5s",
}


def _installed() -> bool:
    return shutil.which("pg_autoctl") is not None and (PG_BIN / "pg_ctl").exists()


def why_not() -> str | None:
    """None when a cluster can be started here (installing the packages if need be)."""
    if not _installed() and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", *PACKAGES],
            capture_output=True,
            timeout=600,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    if not _installed():
        return f"pg_auto_failover is not installed (apt-get install {' '.join(PACKAGES)})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root and there is no {RUN_AS!r} user to run PostgreSQL"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    name: str
    port: int
    pgdata: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@localhost:{self.port}/postgres"


class Cluster:
    """Start with `start()`, stop with `close()` (which removes every file)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="jqs-pgaf-"))
        self.root.chmod(0o755)
        self.monitor = Node("monitor", free_port(), self.root / "monitor")
        self.nodes = [Node(f"node{i}", free_port(), self.root / f"node{i}") for i in (1, 2)]
        if os.geteuid() == 0:
            entry = pwd.getpwnam(RUN_AS)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        """The multi-host URL JQS connects with: the primary, wherever it is."""
        hosts = ",".join(f"localhost:{n.port}" for n in self.nodes)
        return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"

    @property
    def monitor_uri(self) -> str:
        return f"postgres://autoctl_node@localhost:{self.monitor.port}/pg_auto_failover?sslmode=disable"

    def _env(self) -> dict[str, str]:
        return {
            "HOME": str(self.root),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_DATA_HOME": str(self.root / "share"),
            "XDG_RUNTIME_DIR": str(self.root / "run"),
            "PATH": f"{PG_BIN}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }

    def _command(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", RUN_AS, "--"] if os.geteuid() == 0 else []
        env = [f"{k}={v}" for k, v in self._env().items()]
        return [*prefix, "env", "-i", *env, "pg_autoctl", *args]

    def autoctl(self, *args: str, timeout: float = 120) -> str:
        """Run one pg_autoctl command to completion; its output."""
        done = subprocess.run(
            self._command(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_autoctl {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def _run(self, node: Node, *args: str) -> None:
        with (self.root / f"{node.name}.log").open("ab") as log:
            node.proc = subprocess.Popen(
                self._command(*args, "--run"),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a crash kills it and its children
            )

    def _common(self, node: Node) -> tuple[str, ...]:
        return (
            "--pgdata",
            str(node.pgdata),
            "--pgport",
            str(node.port),
            "--hostname",
            "localhost",
            "--listen",
            "localhost",
            "--auth",
            "trust",
            "--no-ssl",
        )

    def start(self, *, within: float = 180) -> None:
        """The monitor, then the primary, then the secondary; returns once both nodes are
        in their roles."""
        self._run(self.monitor, "create", "monitor", *self._common(self.monitor))
        self._wait(lambda: self._sql(self.monitor, "SELECT 1", db="pg_auto_failover"), within)
        for name, value in MONITOR_SETTINGS.items():
            self._sql(self.monitor, f"ALTER SYSTEM SET {name} = '{value}'", db="pg_auto_failover")
        self._sql(self.monitor, "SELECT pg_reload_conf()", db="pg_auto_failover")
        for node in self.nodes:
            self._run(
                node,
                "create",
                "postgres",
                *self._common(node),
                "--monitor",
                self.monitor_uri,
                "--name",
                node.name,
            )
            # One at a time: the first to register becomes the primary.
            self._wait(lambda n=node: self._state(n) in {"single", "primary", "secondary"}, within)  # type: ignore[misc]
        self._wait(lambda: self.states() == {"node1": "primary", "node2": "secondary"}, within)
        self._sql(self.nodes[0], "CREATE TABLE failover_probe (at timestamptz)")

    def _sql(
        self, node: Node, sql: str, *, db: str = "postgres", timeout: float = 20
    ) -> str | None:
        try:
            done = subprocess.run(
                [
                    str(PG_BIN / "psql"),
                    "-h",
                    "localhost",
                    "-p",
                    str(node.port),
                    "-U",
                    "postgres",
                    "-d",
                    db,
                    "-Atqc",
                    sql,
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    def states(self) -> dict[str, str]:
        """Each node's reported state, as the monitor knows it."""
        out = self._sql(
            self.monitor,
            "SELECT nodename || '=' || reportedstate || '/' || goalstate FROM pgautofailover.node",
            db="pg_auto_failover",
        )
        states: dict[str, str] = {}
        for line in (out or "").splitlines():
            name, _, both = line.partition("=")
            reported, _, goal = both.partition("/")
            states[name] = reported if reported == goal else f"{reported}->{goal}"
        return states

    def _state(self, node: Node) -> str | None:
        return self.states().get(node.name)

    def primary(self) -> Node | None:
        """The node the monitor has as primary (settled), if any."""
        for node in self.nodes:
            if self._state(node) in {"primary", "wait_primary"}:
                return node
        return None

    def accepts_writes(self, node: Node) -> bool:
        """Whether a write commits on `node` now. Not merely "out of recovery": a promoted
        standby still waits for a synchronous standby that is gone until the monitor lets
        it go on alone."""
        sql = "INSERT INTO failover_probe VALUES (now()) RETURNING true"
        return self._sql(node, sql, timeout=2) == "t"

    def perform_failover(self) -> None:
        """A planned failover: the secondary becomes the primary (waits for it)."""
        self.autoctl("perform", "failover", "--pgdata", str(self.monitor.pgdata), timeout=180)

    def crash(self, node: Node) -> None:
        """The node's host dies: its pg_autoctl and its postgres, all killed at once."""
        pid_file = node.pgdata / "postmaster.pid"
        postmaster = None
        with contextlib.suppress(OSError, ValueError, IndexError):
            postmaster = int(pid_file.read_text().splitlines()[0])
        if node.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.proc.pid, signal.SIGKILL)
        if postmaster is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGKILL)
        if node.proc is not None:
            node.proc.wait(timeout=30)

    def _wait(self, check: object, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.5)
        raise AssertionError(
            f"pg_auto_failover cluster not ready within {within}s: {self.states()}"
        )

    def logs(self) -> str:
        return "".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.root.glob("*.log"))
        )

    def close(self) -> None:
        for node in [*self.nodes, self.monitor]:
            self.crash(node)
        # Backends of a killed postmaster leave when they notice; give them a moment.
        for node in [*self.nodes, self.monitor]:
            pid_file = node.pgdata / "postmaster.pid"
            for _ in range(20):
                if not pid_file.exists():
                    break
                with contextlib.suppress(OSError, ValueError, IndexError):
                    os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)
                time.sleep(0.1)
                break
        shutil.rmtree(self.root, ignore_errors=True)
