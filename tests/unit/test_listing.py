"""How a page of jobs is split into chunks to read (jqs.store.listing)."""

from __future__ import annotations

from jqs.store.listing import CHUNK_BYTES, Sized, Step, steps

SMALL = Sized(inline=True, size=100, packed=False)


def big(size: int, packed: bool = False) -> Sized:
    return Sized(inline=False, size=size, packed=packed)


def test_jobs_that_came_whole_pass_on_together() -> None:
    assert steps([SMALL, SMALL, SMALL]) == [Step(False, [0, 1, 2])]
    assert steps([]) == []


def test_big_jobs_are_read_together_up_to_the_chunk_size_in_order() -> None:
    third = CHUNK_BYTES // 3
    page = [SMALL, big(third), big(third), big(third), big(third), SMALL, big(CHUNK_BYTES * 2)]
    assert steps(page) == [
        Step(False, [0]),
        Step(True, [1, 2, 3]),
        Step(True, [4]),
        Step(False, [5]),
        Step(True, [6]),  # larger than a chunk: alone
    ]


def test_compressed_jobs_are_read_one_at_a_time() -> None:
    page = [big(10, packed=True), big(10), big(10), big(10, packed=True), big(10, packed=True)]
    assert steps(page) == [
        Step(True, [0]),
        Step(True, [1, 2]),
        Step(True, [3]),
        Step(True, [4]),
    ]
