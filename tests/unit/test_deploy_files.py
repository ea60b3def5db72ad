"""Docker cannot run here, so the deployment files are linted and cross-checked instead."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from jqs.settings import Settings, env_name

REPO = Path(__file__).resolve().parents[2]
SETTING_NAMES = {env_name(field) for field in Settings.model_fields}


def _load(name: str) -> Any:
    return yaml.safe_load((REPO / name).read_text())


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(__file__).parents[2] / ".venv/bin/hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) >= 2, "multi-stage"
    assert all(s.startswith("python:3.11-slim") for s in stages)
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user
    assert user[-1].split(":")[0] not in ("root", "0")
    cmd = re.search(r"^CMD (.+)$", text, re.MULTILINE)
    assert cmd is not None
    assert json.loads(cmd.group(1))[0] == "jqs", "exec-form CMD"
    assert "HEALTHCHECK" in text
    assert "/health" in text
    for name in re.findall(r"\b((?:JQS_[A-Z_]+)|PORT|DATABASE_URL)=", text):
        assert name in SETTING_NAMES, name


def test_compose_agrees_with_settings() -> None:
    compose = _load("docker-compose.yml")
    jqs = compose["services"]["jqs"]
    env = jqs["environment"]
    assert set(env) <= SETTING_NAMES, set(env) - SETTING_NAMES
    assert env["DATABASE_URL"].startswith("postgres://")
    assert "@db:5432/" in env["DATABASE_URL"], "points at the compose database service"
    assert "db" in compose["services"]
    assert f"{env['PORT']}:{env['PORT']}" in jqs["ports"]
    assert env["JQS_ADMIN_KEY"].startswith("${JQS_ADMIN_KEY:?"), "read from .env, required"
    Settings(**{"database_url": env["DATABASE_URL"], "port": int(env["PORT"])})


def test_render_blueprint_agrees_with_settings() -> None:
    render = _load("render.yaml")
    [web] = render["services"]
    assert web["type"] == "web"
    assert web["runtime"] == "docker"
    assert web["healthCheckPath"] == "/health"
    env = {item["key"]: item for item in web["envVars"]}
    assert set(env) <= SETTING_NAMES, set(env) - SETTING_NAMES
    database_names = {db["name"] for db in render["databases"]}
    assert env["DATABASE_URL"]["fromDatabase"]["name"] in database_names
    assert env["JQS_HOST"]["value"] == "0.0.0.0"
    assert env["JQS_ADMIN_KEY"] == {"key": "JQS_ADMIN_KEY", "generateValue": True}, (
        "a public address needs a key: Render generates one"
    )
    assert 1 <= int(env["PORT"]["value"]) <= 65535


def _env_example() -> dict[str, tuple[str, list[str]]]:
    """name -> (value, comment lines just above it)."""
    entries: dict[str, tuple[str, list[str]]] = {}
    comments: list[str] = []
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.startswith("#"):
            comments.append(line)
        elif "=" in line:
            name, value = line.split("=", 1)
            entries[name] = (value, comments)
        else:
            comments = []
    return entries


def test_env_example_lists_every_setting_with_a_comment() -> None:
    entries = _env_example()
    assert set(entries) == SETTING_NAMES
    for name, (_, comments) in entries.items():
        assert comments, f"{name} has no comment saying what it means"


def test_env_example_loads_as_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text((REPO / ".env.example").read_text())
    assert Settings() == Settings.model_construct()


def _locked(name: str) -> dict[str, str]:
    """Package name -> the hashed pin in a lock file (every pin must carry hashes)."""
    text = (REPO / name).read_text()
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", text):
        match = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", block)
        if match:
            assert "--hash=sha256:" in block, f"{name}: {match[1]} is pinned without a hash"
            pins[_canonical(match[1])] = match[2]
    return pins


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    return {_canonical(re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0]) for req in requirements}


def test_lock_files_pin_every_declared_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = _declared(project["dependencies"])
    dev = _declared(project["optional-dependencies"]["dev"])
    image, development = _locked("requirements.lock"), _locked("requirements-dev.lock")
    assert runtime <= image.keys(), f"run `make lock`: {sorted(runtime - image.keys())}"
    assert runtime | dev <= development.keys(), (
        f"run `make lock`: {sorted((runtime | dev) - development.keys())}"
    )
    # The image runs the same versions the tests ran.
    assert {name: development[name] for name in image} == image


def test_image_installs_from_the_lock_file() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in text
    assert "--no-deps ." in text
