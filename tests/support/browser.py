"""Debian's chromium for the dashboard's browser tests: found, else installed with apt-get,
else the tests are skipped saying why. Playwright drives it through `executable_path`; it
never downloads a browser of its own."""

from __future__ import annotations

import os
import shutil
import subprocess

NAMES = ("chromium", "chromium-browser")


def _found() -> str | None:
    for name in NAMES:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def chromium() -> tuple[str | None, str]:
    """The path of chromium, installing Debian's package if needed; else None and why."""
    path = _found()
    if path is not None:
        return path, ""
    if shutil.which("apt-get") is None:
        return None, "chromium is not installed and there is no apt-get to install it"
    sudo: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return None, "chromium is not installed; installing it needs root (no sudo)"
        sudo = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(
            [*sudo, *command], env=env, capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            return None, f"could not install chromium ({' '.join(command)}): {tail}"
    path = _found()
    return (path, "") if path is not None else (None, "apt-get installed no chromium binary")
