"""The JQS exception tree.

    JQSError
    ├── ConfigError            a setting is missing or invalid (start-up stops)
    ├── StoreError             the database could not do what was asked
    │   ├── DatabaseUnavailable    no connection could be made or kept
    │   │   └── ServerUnavailable      (a worker over HTTP) the JQS server could not be
    │   │                              reached, or answered 5xx or 429
    │   ├── TransientError         a statement gave way to another (deadlock): try again
    │   ├── MigrationError         the schema could not be brought up to date
    │   └── ServerRefused          (a worker over HTTP) the JQS server refused a request
    ├── JobNotFound            no job has that id
    └── TaskError              about handlers, not about one run of them
        └── DuplicateTask          two handlers registered under one name

Driver errors are wrapped at the store boundary with their cause kept (`raise ... from exc`).
"""

from __future__ import annotations


class JQSError(Exception):
    """Base of every error JQS raises on purpose."""


class ConfigError(JQSError):
    """A setting is missing or invalid."""


class StoreError(JQSError):
    """The database could not do what was asked."""


class DatabaseUnavailable(StoreError):
    """No connection to PostgreSQL could be made or kept."""


class TransientError(StoreError):
    """PostgreSQL cancelled a statement to let another go on (a deadlock, a serialization
    failure); the same statement may well succeed if tried again."""


class MigrationError(StoreError):
    """The schema could not be brought up to date."""


class ServerUnavailable(DatabaseUnavailable):
    """A worker over HTTP could not reach its JQS server, or the server could not take the
    request now (5xx, 429). A DatabaseUnavailable: the worker tries again as it would when
    its database is away."""


class ServerRefused(StoreError):
    """A worker over HTTP sent a request its JQS server refused (401, 403, 4xx): sending it
    again would not help. `status` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class JobNotFound(JQSError):
    """No job has the requested id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class TaskError(JQSError):
    """A problem with task handlers themselves."""


class DuplicateTask(TaskError):
    """Two handlers were registered under one name."""
