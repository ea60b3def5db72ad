"""How a page of jobs is read in chunks of bounded size (PostgresStore.find_text).

A page is read in two steps. The first statement (job_list) gives every job of the page,
with its JSON when that is small and stored uncompressed (its size as text is then known
from the stored size), and otherwise only the stored size. The jobs left without their JSON
are read afterwards by id (job_get_many): uncompressed ones together up to `CHUNK_BYTES`,
compressed ones one at a time, since a compressed value can be many times its stored size.
Each read is a statement of its own, so no connection is held while the client reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

# A job whose JSON takes at most this much as stored comes with the page's first statement.
# A full page of them (100) is then a few MiB at most.
INLINE_BYTES = 16 * 1024
# The jobs read together by a later statement take at most this much as stored (or are one).
CHUNK_BYTES = 1024 * 1024


class Sized(NamedTuple):
    """What the first statement says of one job's JSON."""

    inline: bool  # it came with the row
    size: int  # bytes as stored
    packed: bool  # some of it is compressed


class Step(NamedTuple):
    """Positions of the page's jobs, in order: to pass on as they came, or to read first."""

    read: bool
    positions: list[int]


def steps(page: Sequence[Sized]) -> list[Step]:
    """The chunks a page is passed on in, in the page's order."""
    out: list[Step] = []
    held = 0  # bytes of the read step being gathered
    for position, job in enumerate(page):
        last = out[-1] if out else None
        if job.inline:
            if last is not None and not last.read:
                last.positions.append(position)
            else:
                out.append(Step(read=False, positions=[position]))
            continue
        joins = (
            last is not None
            and last.read
            and not job.packed
            and held + job.size <= CHUNK_BYTES
            and not page[last.positions[-1]].packed
        )
        if joins:
            assert last is not None
            last.positions.append(position)
            held += job.size
        else:
            out.append(Step(read=True, positions=[position]))
            held = job.size
    return out
