"""The benchmark report shows each row's ratio in the direction its target is stated."""

from __future__ import annotations

import math

import pytest
from bench.run import _ratio_met, _shown_ratio
from bench.scenarios import Row


def _row(value: float, baseline: float, target: str, higher_is_better: bool) -> Row:
    return Row("s", value, baseline, "us", "b", target, higher_is_better=higher_is_better)


@pytest.mark.parametrize(
    ("row", "shown"),
    [
        (_row(30_000, 60_000, ">= 0.5x", True), 0.5),  # a rate: JQS / baseline
        (_row(600, 500, "<= 1.2x", False), 1.2),  # a cost bound to a multiple: JQS / baseline
        (_row(2.0, 1.0, "<= 10 ms", False), 0.5),  # a latency: baseline / JQS
    ],
)
def test_the_ratio_reads_as_the_target_does(row: Row, shown: float) -> None:
    assert math.isclose(_shown_ratio(row), shown)


def test_only_at_least_targets_are_judged_from_the_ratio() -> None:
    assert _ratio_met(_row(30_000, 60_000, ">= 0.5x", True)) is True
    assert _ratio_met(_row(29_000, 60_000, ">= 0.5x", True)) is False
    assert _ratio_met(_row(600, 500, "<= 1.2x", False)) is None  # the scenario judges it
