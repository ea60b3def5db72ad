"""JQS configuration: one pydantic-settings class, read from the environment and `.env`.
Its worker pool's part (jqs.workhost.settings) is shared with the worker side's installs.

The seed's names (`DATABASE_URL`, `PORT`) are kept as they are; everything JQS adds is
prefixed `JQS_`. Settings are built once by the entrypoint and passed down.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, TypeAdapter, field_validator

from jqs.tasks.schedules import CronEntry
from jqs.webhooks.dispatcher import DispatchSettings
from jqs.webhooks.schedule import DEFAULT_SCHEDULE, RetrySchedule
from jqs.workhost.settings import LogLevel, WorkerSettings, env_name, load

__all__ = ["LogLevel", "Settings", "env_name", "load_settings", "parse_duration"]

_CRON_LIST = TypeAdapter(list[CronEntry])
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_duration(text: str) -> float:
    """Seconds in "90", "45s", "30m", "12h", "7d" or "2w"; ValueError otherwise."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 3600, 30m, 12h or 7d")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


class Settings(WorkerSettings):
    """Every knob of a JQS process; see `.env.example` for the meaning of each. A worker
    pool's own (WorkerSettings) are shared with the worker side's installs."""

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "JQS_DATABASE_URL"),
        description="PostgreSQL URL; unset starts an embedded server in JQS_DATA_DIR.",
    )
    database_pooler: Literal["none", "transaction"] = Field(
        default="none",
        description="transaction: DATABASE_URL is a pooler in transaction mode (PgBouncer).",
    )
    listen_url: str | None = Field(
        default=None,
        description="PostgreSQL URL for LISTEN, bypassing a pooler; unset there: poll only.",
    )
    port: int = Field(
        default=8080, ge=0, le=65535, validation_alias=AliasChoices("PORT", "JQS_PORT")
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    admin_key: SecretStr | None = Field(
        default=None, description="Bootstrap API key with every scope (32+ characters)."
    )
    auth: Literal["auto", "off"] = Field(
        default="auto", description="off: serve without API keys, on any address."
    )
    cors_origins: str = Field(
        default="", description="Comma-separated origins whose pages may call the API."
    )
    data_dir: Path = Field(
        default=Path(".jqs/pgdata"), description="Embedded PostgreSQL data directory."
    )
    rescue_interval: float = Field(default=5.0, gt=0, le=3_600)
    max_attempts: int = Field(default=3, ge=1, le=1_000)
    job_timeout: float | None = Field(default=None, gt=0, le=7 * 86_400)
    retention: float = Field(default=7 * 86_400, ge=0, description="0 keeps jobs forever.")
    retention_interval: float = Field(default=60.0, gt=0, le=86_400)
    cron: str = Field(default="", description="JSON list of periodic schedules.")
    webhook_schedule: str = Field(
        default=DEFAULT_SCHEDULE,
        description="Seconds before each webhook attempt: the first, then after each failure.",
    )
    webhook_timeout: float = Field(default=15.0, gt=0, le=600)
    webhook_concurrency: int = Field(default=100, ge=1, le=10_000)
    webhook_poll_interval: float = Field(default=1.0, gt=0, le=60)
    webhook_rotation_overlap: float = Field(
        default=86_400.0, ge=0, le=30 * 86_400, description="Seconds an old secret still signs."
    )
    db_pool_min: int = Field(default=1, ge=0, le=1_000)
    db_pool_max: int = Field(default=10, ge=1, le=1_000)
    db_connect_timeout: float = Field(default=10.0, gt=0, le=600)
    db_command_timeout: float = Field(default=30.0, gt=0, le=3_600)
    max_body_bytes: int = Field(default=1_048_576, ge=1, le=64 * 1024 * 1024)
    max_json_depth: int = Field(default=64, ge=1, le=1_000)
    page_size_max: int = Field(default=100, ge=1, le=10_000)
    max_header_bytes: int = Field(default=65_536, ge=1_024, le=16 * 1024 * 1024)
    header_timeout: float = Field(default=10.0, gt=0, le=3_600)
    keep_alive_timeout: int = Field(default=5, ge=1, le=3_600)
    # Event streams (docs/events.md): a comment line after this many seconds without an
    # event; each stream ends after sse_max_duration (its client resumes); a client that
    # lets more than sse_buffer events pile up unread is cut off (it resumes too).
    sse_keepalive: float = Field(default=15.0, gt=0, le=3_600)
    sse_max_duration: float = Field(default=3_600.0, gt=0, le=7 * 86_400)
    sse_buffer: int = Field(default=1_000, ge=1, le=1_000_000)
    # How often the event log is read for streams when no notification says it changed,
    # and at least how often the jobs waited for are looked up (ends nobody reported).
    events_poll_interval: float = Field(default=1.0, gt=0, le=60)
    max_connections: int = Field(default=10_000, ge=1, le=10_000_000)
    metrics: bool = Field(default=True, description="false turns /metrics and its counting off.")

    @field_validator("database_url", "listen_url")
    @classmethod
    def _database_url_scheme(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must start with postgres:// or postgresql://")
        return value

    @field_validator("admin_key", mode="before")
    @classmethod
    def _admin_key(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip() == "":
                return None
            if len(value) < 32:
                raise ValueError("must be at least 32 characters (try: openssl rand -hex 32)")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        origins = [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return ",".join(origins)

    @field_validator("database_pooler", mode="before")
    @classmethod
    def _lower_pooler(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or "none"
        return value

    @field_validator("auth", mode="before")
    @classmethod
    def _lower_auth(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("job_timeout", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("retention", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("cron")
    @classmethod
    def _cron_entries(cls, value: str) -> str:
        _CRON_LIST.validate_json(value or "[]")  # refuse a bad schedule at start-up
        return value

    @field_validator("webhook_schedule")
    @classmethod
    def _webhook_schedule(cls, value: str) -> str:
        RetrySchedule.parse(value)  # refuse a bad schedule at start-up
        return value

    @property
    def cron_entries(self) -> list[CronEntry]:
        """The schedules named in JQS_CRON."""
        return _CRON_LIST.validate_json(self.cron or "[]")

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        """The origins named in JQS_CORS_ORIGINS."""
        return tuple(origin for origin in self.cors_origins.split(",") if origin)

    @property
    def dispatch_settings(self) -> DispatchSettings:
        """How webhook deliveries are made."""
        return DispatchSettings(
            schedule=RetrySchedule.parse(self.webhook_schedule),
            timeout=self.webhook_timeout,
            concurrency=self.webhook_concurrency,
            poll_interval=self.webhook_poll_interval,
        )


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning validation errors into one readable ConfigError."""
    return load(Settings, **overrides)
