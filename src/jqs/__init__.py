"""JQS: a PostgreSQL-backed job queue service."""

from jqs.client.transaction import enqueue, enqueue_sync
from jqs.tasks.context import JobContext, current_job
from jqs.tasks.control import FailNow, RetryLater
from jqs.tasks.registry import task

__version__ = "0.1.0"

__all__ = [
    "FailNow",
    "JobContext",
    "RetryLater",
    "__version__",
    "current_job",
    "enqueue",
    "enqueue_sync",
    "task",
]
