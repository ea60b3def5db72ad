"""KeyRing: the API keys every request is checked against, held in memory.

Checking a key is a hash and a dict lookup, never a query: a request with an unknown key
costs the database nothing. The ring re-reads the usable keys every `interval` seconds, so a
key revoked or created in any process (or with `jqs keys` on the database directly) takes
effect everywhere within that time; a key revoked through this process's API leaves at once.
When the database cannot be read, the ring keeps the keys it last read.
"""

from __future__ import annotations

from jqs.auth.principal import Principal, admin_from_env
from jqs.auth.secrets import secret_hash
from jqs.clock import Clock, SystemClock
from jqs.errors import StoreError
from jqs.logging import get_logger
from jqs.port import Keys
from jqs.service import LoopService

log = get_logger(__name__)

# A revocation reaches every process within this; the API promises 5 seconds.
REFRESH_SECONDS = 2.0
# Authorization values remembered between two reads at most (one key can be spelled many
# ways: "Bearer", "bearer", extra spaces).
MAX_REMEMBERED = 10_000


class KeyRing(LoopService):
    """The usable keys by the hash of their secret, and the bootstrap admin key."""

    name = "keyring"

    def __init__(
        self,
        store: Keys,
        *,
        admin_key: str | None = None,
        interval: float = REFRESH_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._interval = interval
        self._clock = clock or SystemClock()
        self._admin = {secret_hash(admin_key): admin_from_env()} if admin_key else {}
        self._keys: dict[str, Principal] = dict(self._admin)
        self._seen: dict[bytes, Principal] = {}  # Authorization values known to be good

    @property
    def empty(self) -> bool:
        """Whether no key at all could be used (none stored, no JQS_ADMIN_KEY)."""
        return not self._keys

    def authenticate(self, authorization: bytes) -> Principal | None:
        """The key an `Authorization: Bearer <secret>` value names, unless it is unknown,
        revoked or expired (or the value is not a bearer token at all).

        Values seen to name a usable key are remembered until the keys are next read, so a
        client's every request after its first costs a dict lookup, not a hash; values that
        name no key are never remembered (a flood of made-up keys cannot grow anything).
        """
        principal = self._seen.get(authorization)
        if principal is None:
            if authorization[:7].lower() != b"bearer ":
                return None
            secret = authorization[7:].strip().decode("latin-1")
            principal = self._keys.get(secret_hash(secret))
            if principal is None:
                return None
            if len(self._seen) < MAX_REMEMBERED:
                self._seen[authorization] = principal
        if principal.expires_at is not None and principal.expired(self._clock.now()):
            return None
        return principal

    def by_id(self, key_id: str) -> tuple[str, Principal] | None:
        """A usable key's secret hash and principal, by the key's id (a dashboard session
        names its key by id; jqs.ui.session)."""
        for digest, principal in self._keys.items():
            if principal.id == key_id:
                if principal.expires_at is not None and principal.expired(self._clock.now()):
                    return None
                return digest, principal
        return None

    def add(self, digest: str, principal: Principal) -> None:
        """A key just created by this process: usable here at once."""
        self._keys[digest] = principal

    def remove(self, key_id: str) -> None:
        """A key just revoked by this process: refused here at once."""
        self._keys = {h: p for h, p in self._keys.items() if p.id != key_id}
        self._seen = {}

    async def refresh(self) -> None:
        """Read the usable keys now."""
        keys = dict(self._admin)
        for active in await self._store.key_list_active():
            keys[active.secret_hash] = Principal.of(active.key)
        self._keys = keys
        self._seen = {}

    async def _loop(self) -> None:
        while True:
            await self._clock.sleep(self._interval)
            try:
                await self.refresh()
            except StoreError as exc:  # keep the keys last read; the next round tries again
                log.warning("api_keys_unread", error=str(exc))
