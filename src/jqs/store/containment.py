"""PostgreSQL's JSON containment (`jsonb @> jsonb`) for the in-memory store.

An object contains another when each of the other's keys is in it with a value that
contains the other's; an array contains another when each of the other's elements is
contained in one of its own (order and duplicates do not matter); an array also contains a
bare scalar it holds (the one exception to structures matching); scalars are equal. JSON's
true is not 1, so booleans and numbers never match each other.
"""

from __future__ import annotations

from typing import Any


def contains(outer: Any, inner: Any) -> bool:
    """Whether `outer @> inner`, as PostgreSQL decides it for jsonb values."""
    if isinstance(outer, dict):
        return isinstance(inner, dict) and all(
            key in outer and contains(outer[key], value) for key, value in inner.items()
        )
    if isinstance(outer, list):
        if isinstance(inner, list):
            return all(any(contains(each, wanted) for each in outer) for wanted in inner)
        return not isinstance(inner, dict) and any(_same_scalar(each, inner) for each in outer)
    return _same_scalar(outer, inner)


def _same_scalar(a: Any, b: Any) -> bool:
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b) and (a is None) == (b is None)
