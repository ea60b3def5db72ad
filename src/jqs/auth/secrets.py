"""Key secrets: made at random, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "jqs_"


def new_key_id() -> str:
    """A key's public id: named in logs, jobs and the API, never a secret."""
    return "key_" + secrets.token_hex(6)


def new_secret(key_id: str) -> str:
    """The secret a client sends: the key's id, then 256 random bits.

    The id inside lets an operator tell which key a leaked secret belongs to.
    """
    return f"{PREFIX}{key_id.removeprefix('key_')}_{secrets.token_urlsafe(32)}"


def secret_hash(secret: str) -> str:
    """What the database keeps of a secret.

    SHA-256, not a slow password hash: the secrets are 256 random bits, which no amount of
    hashing speed makes guessable, and a key is checked on every request.
    """
    return hashlib.sha256(secret.encode()).hexdigest()
