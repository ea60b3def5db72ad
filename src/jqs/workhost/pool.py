"""A worker pool's parts, built from WorkerSettings: its handlers, its retry policy, how it
claims. The server builds its own pool from these too (jqs.runtime)."""

from __future__ import annotations

from jqs.tasks.loader import HttpTaskSettings, build_registry
from jqs.tasks.registry import TaskRegistry
from jqs.worker import PoolSettings
from jqs.worker.executor import RetryPolicy
from jqs.workhost.settings import WorkerSettings


def registry_for(settings: WorkerSettings) -> TaskRegistry:
    """The handlers these settings ask for."""
    return build_registry(
        settings.task_modules,
        demo=settings.demo_tasks,
        demo_delay=settings.demo_delay,
        http=HttpTaskSettings(
            timeout=settings.http_task_timeout,
            max_body=settings.http_task_max_body,
            policy=settings.destination_policy,
        )
        if settings.http_task
        else None,
    )


def retry_policy_for(settings: WorkerSettings) -> RetryPolicy:
    """How long failed jobs wait before they run again."""
    return RetryPolicy(
        backoff_base=settings.retry_backoff_base, backoff_max=settings.retry_backoff_max
    )


def pool_settings_for(settings: WorkerSettings) -> PoolSettings:
    """How a worker pool works, by these settings."""
    return PoolSettings(
        concurrency=settings.worker_concurrency,
        queues=settings.queue_names,
        poll_interval=settings.poll_interval,
        lease_seconds=settings.lease_seconds,
        retry=retry_policy_for(settings),
    )
