"""The settings a worker pool needs, read from the environment and `.env` as the server
reads its own: the server's Settings (jqs.settings) extends these, so both installs take
the same JQS_* variables for the same things."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from jqs.errors import ConfigError
from jqs.netguard import DestinationPolicy
from jqs.tasks.names import check_queue_name

LogLevel = Literal["debug", "info", "warning", "error"]


class WorkerSettings(BaseSettings):
    """The knobs of a worker pool and of the handlers it runs; see `.env.example`."""

    model_config = SettingsConfigDict(
        env_prefix="JQS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    worker_concurrency: int = Field(default=5, ge=1, le=10_000)
    queues: str = Field(default="default", description="Comma-separated queues to serve.")
    poll_interval: float = Field(default=0.5, gt=0, le=60)
    lease_seconds: float = Field(default=30.0, gt=0, le=86_400)
    retry_backoff_base: float = Field(default=1.0, ge=0, le=86_400)
    retry_backoff_max: float = Field(default=300.0, ge=0, le=7 * 86_400)
    shutdown_timeout: float = Field(default=30.0, ge=0, le=3_600)
    tasks: str = Field(default="", description="Comma-separated modules with @task handlers.")
    demo_tasks: bool = True
    demo_delay: float = Field(default=1.0, ge=0, le=60)
    http_task_timeout: float = Field(default=30.0, gt=0, le=3_600)
    http_task_max_body: int = Field(default=65_536, ge=0, le=16 * 1024 * 1024)
    http_task: bool = Field(default=True, description="false removes the built-in http task.")
    http_allow: str = Field(
        default="", description="Hosts and CIDR ranges the http task may reach besides public ones."
    )
    log_level: LogLevel = "info"

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:
            raise ValueError("name at least one queue")
        for name in names:
            check_queue_name(name)
        return ",".join(names)

    @field_validator("http_allow")
    @classmethod
    def _http_allow_entries(cls, value: str) -> str:
        DestinationPolicy.parse(value)  # refuse a bad entry at start-up
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def destination_policy(self) -> DestinationPolicy:
        """Where the http task may send requests (public addresses plus JQS_HTTP_ALLOW)."""
        return DestinationPolicy.parse(self.http_allow)

    @property
    def queue_names(self) -> list[str]:
        """The queues named in JQS_QUEUES, in order."""
        return self.queues.split(",")

    @property
    def task_modules(self) -> list[str]:
        """The modules named in JQS_TASKS, in order."""
        return [name.strip() for name in self.tasks.split(",") if name.strip()]


_SEED_NAMES = {"database_url": "DATABASE_URL", "port": "PORT"}


def env_name(field: str) -> str:
    """The environment variable that sets `field` (the seed's names kept unprefixed)."""
    return _SEED_NAMES.get(field, f"JQS_{field.upper()}")


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load(kind: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build settings of `kind`, turning validation errors into one readable ConfigError."""
    try:
        return kind(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        name = field if field.isupper() else env_name(field)
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"invalid setting {name}: {message}") from exc
    except SettingsError as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc


def load_worker_settings(**overrides: object) -> WorkerSettings:
    """The worker's settings, from the environment, `.env` and `overrides`."""
    return load(WorkerSettings, **overrides)
