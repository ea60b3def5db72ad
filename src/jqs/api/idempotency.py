"""The Idempotency-Key header: validation, and the digest that tells requests apart."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from jqs.api.problems import ProblemError

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# What validate_key accepts, less what HTTP itself strips: spaces at either end.
KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"


def validate_key(key: str | None) -> str | None:
    """The key as sent, or None; 422 for an empty, too long or non-printable key."""
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise ProblemError(
            422, f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    return key


def request_digest(payload: dict[str, Any], options: dict[str, Any]) -> str:
    """A digest of what was asked: the payload (key order ignored) and the job options."""
    canonical = orjson.dumps([payload, options], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def scoped(key: str, key_id: str | None) -> str:
    """The key as stored: under the API key that sent it, so that one API key cannot learn
    whether another used the same Idempotency-Key."""
    return key if key_id is None else f"{key_id}/{key}"
