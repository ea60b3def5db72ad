"""How many jobs a busy pool claims ahead: the handlers' return rate times claim latency."""

from __future__ import annotations

from jqs.worker.prefetch import RATE_WINDOW, Prefetch


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def returns(prefetch: Prefetch, clock: Clock, per_second: float) -> int:
    """One rate window of handler returns at `per_second`; the target after it."""
    for _ in range(round(per_second * RATE_WINDOW)):
        prefetch.handler_returned()
    clock.now += RATE_WINDOW * (1 + 1e-9)  # a hair more: float steps must not fall short
    return prefetch.target()


def test_nothing_ahead_before_anything_is_known() -> None:
    assert Prefetch(100, clock=Clock()).target() == 0


def test_short_handlers_get_two_round_trips_of_jobs_ahead() -> None:
    clock = Clock()
    prefetch = Prefetch(1000, clock=clock)
    prefetch.claim_took(0.004)
    targets = [returns(prefetch, clock, 10_000) for _ in range(4)]
    # 2 x 10,000/s x 4 ms = 80 jobs, from the first window on (a job less where floats
    # round down).
    assert all(79 <= target <= 80 for target in targets), targets


def test_a_new_rate_moves_the_target_halfway_per_window() -> None:
    clock = Clock()
    prefetch = Prefetch(1000, clock=clock)
    prefetch.claim_took(0.004)
    returns(prefetch, clock, 10_000)
    assert 59 <= returns(prefetch, clock, 5_000) <= 60  # 7,500/s: 60 jobs


def test_never_more_than_the_limit() -> None:
    clock = Clock()
    prefetch = Prefetch(50, clock=clock)
    prefetch.claim_took(0.01)
    assert [returns(prefetch, clock, 100_000) for _ in range(3)] == [50, 50, 50]


def test_slow_handlers_get_nothing_ahead() -> None:
    clock = Clock()
    prefetch = Prefetch(100, clock=clock)
    prefetch.claim_took(0.003)
    # 100 handlers of one second each: 100/s x 3 ms x 2 is less than one job.
    assert [returns(prefetch, clock, 100) for _ in range(10)] == [0] * 10


def test_an_idle_spell_brings_the_target_down() -> None:
    clock = Clock()
    prefetch = Prefetch(1000, clock=clock)
    prefetch.claim_took(0.005)
    for _ in range(10):
        returns(prefetch, clock, 20_000)
    busy = prefetch.target()
    idle = [returns(prefetch, clock, 0) for _ in range(10)]
    assert busy > 150
    assert idle[0] < busy
    assert idle[-1] == 0


def test_claim_latency_is_smoothed() -> None:
    clock = Clock()
    prefetch = Prefetch(10_000, clock=clock)
    prefetch.claim_took(0.002)
    prefetch.claim_took(0.010)  # one slow claim moves the estimate halfway, not all the way
    for _ in range(20):
        target = returns(prefetch, clock, 10_000)
    # 2 x 10,000/s x 6 ms = 120 jobs (a job less where floats round down).
    assert 119 <= target <= 120
