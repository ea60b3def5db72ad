"""The dashboard's sign-in session: a signed cookie naming an API key, never holding it.

Signing in with an API key sets the cookie `jqs_session` to `<key id>.<expiry>.<nonce>.<mac>`:
the key's id, when the session ends (Unix seconds), 16 random bytes, and an HMAC-SHA256 of
the three made with the key's stored secret hash. That hash is known only to the server
(the database and every process's key ring), so:
- the cookie never carries the key, and cannot be made or altered without the database;
- every JQS process checks any session with no shared secret or session table to set up;
- revoking the key (or its expiry) ends each of its sessions within seconds.
A session lives `SESSION_SECONDS`; signing out clears the cookie in the browser, but a copy
taken earlier stays usable until it expires or its key is revoked.

Each form's CSRF token is an HMAC of the session's nonce with the same key: a page of
another site can neither read it nor compute it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from jqs.auth.keyring import KeyRing
from jqs.auth.principal import ANONYMOUS, Principal

COOKIE = "jqs_session"
SESSION_SECONDS = 8 * 3600
# With authentication off every visitor is anonymous; their CSRF tokens are signed with a
# secret of this process (a token from another process is refused: sign-in is not needed).
_PROCESS_SECRET = secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in visitor: the key, and the secret its tokens are signed with."""

    principal: Principal
    nonce: str
    _signing: bytes

    @property
    def csrf(self) -> str:
        """The token every form of this session carries."""
        return _mac(self._signing, f"csrf|{self.nonce}")

    def csrf_ok(self, token: str | None) -> bool:
        """Whether `token` is this session's."""
        return token is not None and hmac.compare_digest(token, self.csrf)


def new_token() -> str:
    """A random token (the sign-in form's, checked against its own cookie)."""
    return secrets.token_urlsafe(24)


def same(a: str, b: str) -> bool:
    """Whether two tokens are equal, in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())


def anonymous() -> Session:
    """The session of every visitor while authentication is off."""
    return Session(ANONYMOUS, "anonymous", _PROCESS_SECRET)


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _encode_id(key_id: str) -> str:
    return base64.urlsafe_b64encode(key_id.encode()).rstrip(b"=").decode()


def _decode_id(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def issue(digest: str, principal: Principal, now: float | None = None) -> str:
    """The cookie value of a new session for the key whose secret hash is `digest`."""
    expires = int((time.time() if now is None else now) + SESSION_SECONDS)
    nonce = secrets.token_urlsafe(16)
    body = f"{_encode_id(principal.id)}.{expires}.{nonce}"
    return f"{body}.{_mac(digest.encode(), body)}"


def open_session(value: str | None, keys: KeyRing, now: float | None = None) -> Session | None:
    """The session a cookie value stands for, or None if it is forged, expired, or its key
    can no longer be used."""
    if not value:
        return None
    parts = value.split(".")
    if len(parts) != 4:
        return None
    encoded_id, expires, nonce, mac = parts
    try:
        key_id = _decode_id(encoded_id)
        ends = int(expires)
    except ValueError:
        return None
    if ends < (time.time() if now is None else now):
        return None
    found = keys.by_id(key_id)
    if found is None:
        return None
    digest, principal = found
    signing = digest.encode()
    if not hmac.compare_digest(mac, _mac(signing, f"{encoded_id}.{expires}.{nonce}")):
        return None
    return Session(principal, nonce, signing)
