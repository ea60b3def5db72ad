"""Workers elsewhere: what the HTTP worker protocol (jqs.api.workers) needs of the process.

`ClaimHub` (hub.py) hands out jobs, long-polling on the process's signals of new work;
`Ends` (ends.py) writes the outcomes workers report, as an in-process worker's are written.
"""

from __future__ import annotations

from dataclasses import dataclass

from jqs.remote.ends import Ends
from jqs.remote.hub import ClaimHub
from jqs.store.port import JobQueue

__all__ = ["ClaimHub", "Ends", "RemoteWorkers"]


@dataclass(frozen=True, slots=True)
class RemoteWorkers:
    """The parts the worker protocol's routes use, and the lease they grant by default."""

    queue: JobQueue
    hub: ClaimHub
    ends: Ends
    lease_seconds: float = 30.0
