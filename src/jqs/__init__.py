"""JQS: a PostgreSQL-backed job queue service.

`from jqs import task, current_job, enqueue, ...` works in both distributions: the server's
(`jqs`) and the client's (`jqs-client`), which ships this same file. The names are imported
when first asked for, not here: `import jqs.client` must work with only the client's
dependencies installed, while `task`, `current_job`, `FailNow` and `RetryLater` need the
worker side's (`jqs-client[worker]`, or the server).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "enqueue": "jqs.client.transaction",
    "enqueue_sync": "jqs.client.transaction",
    "JobContext": "jqs.tasks.context",
    "current_job": "jqs.tasks.context",
    "FailNow": "jqs.tasks.control",
    "RetryLater": "jqs.tasks.control",
    "task": "jqs.tasks.registry",
}

WORKER_EXTRA_HINT = "install the worker side: pip install 'jqs-client[worker]'"


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'jqs' has no attribute {name!r}")
    try:
        module = importlib.import_module(home)
    except ModuleNotFoundError as exc:
        # A client-only install: the handlers' side needs the packages of the [worker] extra.
        raise ImportError(f"jqs.{name} needs {exc.name}: {WORKER_EXTRA_HINT}") from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
