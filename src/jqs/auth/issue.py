"""Making and revoking API keys: the one way, for the API and for `jqs keys` alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from jqs.auth.principal import Principal
from jqs.auth.scopes import Scope
from jqs.auth.secrets import new_key_id, new_secret, secret_hash
from jqs.models import ApiKey
from jqs.port import Keys, NewKey
from jqs.webhooks import signing

MAX_NAME_LENGTH = 100


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new key may do. `queues`/`tasks` None: every one."""

    name: str
    scopes: frozenset[Scope]
    queues: Sequence[str] | None = None
    tasks: Sequence[str] | None = None
    rate_limit: float | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just made, and its secret: shown this once, stored nowhere."""

    key: ApiKey
    secret: str
    secret_hash: str
    webhook_secret: str  # signs the callbacks of the jobs the key submits; shown once too

    @property
    def principal(self) -> Principal:
        """The key as requests present it."""
        return Principal.of(self.key)


async def issue_key(store: Keys, spec: KeySpec, *, created_by: str | None) -> IssuedKey:
    """Make a key with a new random secret and store its hash."""
    key_id = new_key_id()
    secret = new_secret(key_id)
    digest = secret_hash(secret)
    webhook_secret = signing.new_secret()
    stored = await store.key_create(
        NewKey(
            id=key_id,
            name=spec.name,
            secret_hash=digest,
            scopes=sorted(scope.value for scope in spec.scopes),
            queues=None if spec.queues is None else sorted(set(spec.queues)),
            tasks=None if spec.tasks is None else sorted(set(spec.tasks)),
            rate_limit=spec.rate_limit,
            expires_at=spec.expires_at,
            created_by=created_by,
            webhook_secret=webhook_secret,
        )
    )
    return IssuedKey(stored, secret, digest, webhook_secret)
