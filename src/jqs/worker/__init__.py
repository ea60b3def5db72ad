"""Workers: the pool that claims jobs, the executor that runs them, the writer of outcomes."""

from jqs.worker.pool import PoolSettings, WorkerPool

__all__ = ["PoolSettings", "WorkerPool"]
