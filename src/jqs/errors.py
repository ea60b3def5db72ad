"""The JQS exception tree.

    JQSError
    ├── ConfigError            a setting is missing or invalid (start-up stops)
    ├── StoreError             the database could not do what was asked
    │   ├── DatabaseUnavailable    no connection could be made or kept
    │   ├── TransientError         a statement gave way to another (deadlock): try again
    │   └── MigrationError         the schema could not be brought up to date
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


class JobNotFound(JQSError):
    """No job has the requested id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class TaskError(JQSError):
    """A problem with task handlers themselves."""


class DuplicateTask(TaskError):
    """Two handlers were registered under one name."""
