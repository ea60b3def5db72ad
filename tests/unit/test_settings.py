from __future__ import annotations

from pathlib import Path

import pytest

from jqs.errors import ConfigError
from jqs.settings import Settings, load_settings

_ENV = ("DATABASE_URL", "PORT", "JQS_WORKER_CONCURRENCY", "JQS_TASKS", "JQS_DATA_DIR")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_match_the_seed() -> None:
    settings = load_settings()
    assert settings.database_url is None
    assert settings.port == 8080
    assert settings.worker_concurrency == 5
    assert settings.data_dir == Path(".jqs/pgdata")


def test_seed_names_and_prefixed_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db:5432/x")
    monkeypatch.setenv("PORT", "10000")
    monkeypatch.setenv("JQS_WORKER_CONCURRENCY", "12")
    monkeypatch.setenv("JQS_TASKS", "a.b, c ,")
    settings = load_settings()
    assert settings.database_url == "postgres://u:p@db:5432/x"
    assert settings.port == 10000
    assert settings.worker_concurrency == 12
    assert settings.task_modules == ["a.b", "c"]


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=9999\nJQS_SHUTDOWN_TIMEOUT=3\n")
    settings = load_settings()
    assert settings.port == 9999
    assert settings.shutdown_timeout == 3


def test_empty_database_url_means_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "")
    assert load_settings().database_url is None


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("PORT", "eighty", "PORT"),
        ("PORT", "70000", "PORT"),
        ("JQS_WORKER_CONCURRENCY", "0", "JQS_WORKER_CONCURRENCY"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("JQS_LOG_LEVEL", "loud", "JQS_LOG_LEVEL"),
    ],
)
def test_invalid_settings_give_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, shown: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"invalid setting {shown}: ")
    assert "\n" not in message


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


def test_connection_limits_default_to_the_documented_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "JQS_MAX_HEADER_BYTES",
        "JQS_HEADER_TIMEOUT",
        "JQS_KEEP_ALIVE_TIMEOUT",
        "JQS_MAX_CONNECTIONS",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.max_header_bytes == 65_536
    assert settings.header_timeout == 10.0
    assert 1 <= settings.keep_alive_timeout <= 10
    assert settings.max_connections == 10_000
