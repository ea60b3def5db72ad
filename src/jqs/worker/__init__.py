"""Workers: the pool that claims jobs and the executor that runs them."""

from jqs.worker.pool import WorkerPool

__all__ = ["WorkerPool"]
