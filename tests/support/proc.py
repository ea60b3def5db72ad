"""Run the real `jqs` command as a subprocess and follow its JSON log lines."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def jqs_env(**extra: str) -> dict[str, str]:
    """A clean environment for a JQS subprocess: no inherited JQS_*/DATABASE_URL/PORT."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JQS_") and k not in {"DATABASE_URL", "PORT"}
    }
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_jqs(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `jqs ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "jqs", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class JqsProcess:
    """A running `jqs ...` whose stdout log lines are collected as they come."""

    def __init__(
        self,
        *args: str,
        env: dict[str, str],
        cwd: Path,
        prefix: tuple[str, ...] = (),
        command: str | None = None,
    ) -> None:
        jqs = [command] if command is not None else [sys.executable, "-m", "jqs"]
        self.proc = subprocess.Popen(
            [*prefix, *jqs, *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._stderr: str | None = None
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.raw.append(line)
                with contextlib.suppress(ValueError):
                    self.lines.append(json.loads(line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [line for line in self.lines if line.get("event") == name]

    def wait_for(self, name: str, *, count: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
        """Block until `count` log lines with event `name` have appeared."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [line for line in self.lines if line.get("event") == name]
                if len(found) >= count:
                    return found
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        f"jqs exited ({self.proc.returncode}) before logging {name!r}:\n"
                        + "".join(self.raw[-30:])
                        + self.stderr()
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {name!r} log line within {timeout}s:\n" + "".join(self.raw[-30:])
                    )
                self._cond.wait(min(left, 0.2))

    @property
    def port(self) -> int:
        return int(self.wait_for("api_listening")[0]["port"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def stderr(self) -> str:
        if self._stderr is None and self.proc.poll() is not None and self.proc.stderr is not None:
            self._stderr = self.proc.stderr.read()
        return self._stderr or ""

    def kill(self) -> None:
        """Kill if still running and close the pipes (test teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
