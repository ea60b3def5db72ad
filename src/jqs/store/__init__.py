"""The store: the only package that speaks SQL. It knows nothing of HTTP or workers."""

from jqs.store.cron import CronStore
from jqs.store.jobs import MAX_JOB_ID, JobStore
from jqs.store.queues import QueueStore
from jqs.store.service import Database

__all__ = ["MAX_JOB_ID", "CronStore", "Database", "JobStore", "QueueStore"]
