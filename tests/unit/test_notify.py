"""The events channel's notifications: which jobs ended, within PostgreSQL's payload limit."""

from __future__ import annotations

from jqs.store.notify import (
    PAYLOAD_LIMIT,
    UNNAMED_ENDS,
    ended_job,
    ended_name,
    hear_events,
    payload,
)


def test_a_payload_names_the_ended_jobs_that_fit_and_its_origin_last() -> None:
    ends = [ended_name(job_id) for job_id in range(10**12, 10**12 + 2000)]
    text = payload({"log"}, ends, "@abc")
    names = text.split(",")
    assert len(text.encode()) < PAYLOAD_LIMIT
    assert names[0] == "log"
    assert names[-1] == "@abc"
    sent = names[1:-1]
    assert 500 < len(sent) < len(ends)
    assert sent == ends[: len(sent)]  # the first ones, the rest dropped
    assert payload({"log"}, ends[:3], "@abc") == ",".join(["log", *ends[:3], "@abc"])


def test_a_payload_says_that_ends_were_left_out_when_asked_to() -> None:
    ends = [ended_name(job_id) for job_id in range(10**12, 10**12 + 2000)]
    text = payload({"log"}, ends, "@abc", unnamed=UNNAMED_ENDS)
    names = text.split(",")
    assert len(text.encode()) < PAYLOAD_LIMIT
    assert names[-2:] == [UNNAMED_ENDS, "@abc"]
    few = payload({"log"}, ends[:3], "@abc", unnamed=UNNAMED_ENDS)
    assert UNNAMED_ENDS not in few.split(",")
    earlier = payload({"log"}, ends[:3], "@abc", unnamed=UNNAMED_ENDS, dropped=True)
    assert earlier.split(",")[-2:] == [UNNAMED_ENDS, "@abc"]


def test_a_listener_learns_which_jobs_ended_and_wakes_for_anything_else() -> None:
    woken = 0
    ended: list[int] = []

    def wake() -> None:
        nonlocal woken
        woken += 1

    rechecks = 0

    def recheck() -> None:
        nonlocal rechecks
        rechecks += 1

    heard = hear_events(wake, ended.extend, recheck)
    for name in ("log", ended_name(42), None, "=x", ended_name(7), UNNAMED_ENDS):
        heard(name)
    assert ended == [42, 7]
    assert woken == 4  # "log", a (re)connect, a name it cannot read, and ends unnamed
    assert rechecks == 2  # a (re)connect, and ends unnamed
    assert ended_job("log") is None
    assert ended_job(ended_name(12345678901234)) == 12345678901234
