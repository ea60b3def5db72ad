"""What a key may do: its scopes, each a set of routes."""

from __future__ import annotations

import enum


class Scope(enum.StrEnum):
    """A permission an API key carries."""

    JOBS_SUBMIT = "jobs:submit"  # POST /jobs, POST /jobs/batch
    JOBS_READ = "jobs:read"  # GET /jobs, GET /jobs/{id}, GET /queues
    JOBS_MANAGE = "jobs:manage"  # cancel, retry
    QUEUES_ADMIN = "queues:admin"  # PATCH and DELETE /queues/{name}
    WORKER = "worker"  # the HTTP worker protocol
    METRICS = "metrics"  # GET /metrics
    ADMIN = "admin"  # manage keys; implies every other scope (it could mint them anyway)


ALL_SCOPES = frozenset(Scope)


def parse_scopes(text: str | list[str]) -> frozenset[Scope]:
    """Scopes from "a,b" or ["a", "b"]; ValueError naming an unknown one."""
    names = text.split(",") if isinstance(text, str) else text
    scopes: set[Scope] = set()
    for name in (n.strip() for n in names):
        if not name:
            continue
        try:
            scopes.add(Scope(name))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope {name!r}; scopes are {known}") from None
    if not scopes:
        raise ValueError("name at least one scope")
    return frozenset(scopes)
