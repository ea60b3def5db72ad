"""The store: the only package that speaks SQL. It knows nothing of HTTP or workers.

jqs.port says what a store does (it lives outside this package, so that the worker side
can import it without the database's driver); `PostgresStore` does it on PostgreSQL and
`MemoryStore` in memory; `Database` starts PostgreSQL (or joins it) and hands out its store.
"""

from typing import TYPE_CHECKING

from jqs.port import MAX_JOB_ID, JobQueue, Jobs, Maintenance, Queues, Store
from jqs.store.database import Database
from jqs.store.memory import MemoryStore
from jqs.store.postgres import PostgresStore

__all__ = [
    "MAX_JOB_ID",
    "Database",
    "JobQueue",
    "Jobs",
    "Maintenance",
    "MemoryStore",
    "PostgresStore",
    "Queues",
    "Store",
]

if TYPE_CHECKING:  # both stores implement the whole port (checked by mypy)

    def _implements(postgres: PostgresStore, memory: MemoryStore) -> tuple[Store, Store]:
        return postgres, memory
