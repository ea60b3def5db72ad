"""Who a request acts as, and what that allows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from jqs.auth.scopes import ALL_SCOPES, Scope
from jqs.models import ApiKey


@dataclass(frozen=True, slots=True)
class Principal:
    """An API key's identity and limits, as the API checks them on every request.

    `queues`/`tasks`: None allows every one. `expires_at`: None never expires.
    """

    id: str
    name: str
    scopes: frozenset[Scope]
    queues: frozenset[str] | None = None
    tasks: frozenset[str] | None = None
    rate_limit: float | None = None
    expires_at: datetime | None = None

    @classmethod
    def of(cls, key: ApiKey) -> Principal:
        """The principal an API key stands for."""
        scopes = frozenset(Scope(s) for s in key.scopes if s in Scope.__members__.values())
        return cls(
            id=key.id,
            name=key.name,
            scopes=ALL_SCOPES if Scope.ADMIN in scopes else scopes,
            queues=None if key.queues is None else frozenset(key.queues),
            tasks=None if key.tasks is None else frozenset(key.tasks),
            rate_limit=key.rate_limit,
            expires_at=key.expires_at,
        )

    @property
    def restricted(self) -> bool:
        """Whether the key is limited to some queues or tasks."""
        return self.queues is not None or self.tasks is not None

    def has(self, scope: Scope) -> bool:
        """Whether the key carries `scope`."""
        return scope in self.scopes

    def may_use_queue(self, queue: str) -> bool:
        """Whether the key may touch jobs and settings of `queue`."""
        return self.queues is None or queue in self.queues

    def may_use_task(self, task: str | None) -> bool:
        """Whether the key may touch jobs of `task` (a job without one counts as "")."""
        return self.tasks is None or (task or "") in self.tasks

    def may_touch(self, queue: str, task: str | None) -> bool:
        """Whether a job of this queue and task is within the key's reach."""
        return self.may_use_queue(queue) and self.may_use_task(task)

    def expired(self, now: datetime) -> bool:
        """Whether the key has passed its expiry."""
        return self.expires_at is not None and now >= self.expires_at


# Every request when authentication is off (a loopback address with no key, or JQS_AUTH=off).
ANONYMOUS = Principal(id="anonymous", name="anonymous", scopes=ALL_SCOPES)


def admin_from_env(env_name: str = "JQS_ADMIN_KEY") -> Principal:
    """The bootstrap key from the server's environment: every scope, every queue."""
    return Principal(id="admin-env", name=env_name, scopes=ALL_SCOPES)


def names(values: Iterable[str] | None) -> str:
    """A set of queue or task names, sorted, for a message."""
    return "any" if values is None else ", ".join(sorted(values)) or "none"
