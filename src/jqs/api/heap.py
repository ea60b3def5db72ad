"""Giving freed heap memory back to the system after a large answer.

A listing of big jobs passes values of up to a MiB through the heap. glibc serves the first
ones from their own mappings, but once such a block is freed it raises its threshold for
that, and the rest come from the heap, in whose middle freed memory stays part of the
process (RSS) until `malloc_trim` returns it. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

# An answer at least this large is followed by a trim: a walk over the heap's free blocks,
# worth it only after large values have passed through.
TRIM_AFTER_BYTES = 8 * 1024 * 1024


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the heap's free pages to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
