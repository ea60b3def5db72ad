"""The store contract for API keys: created, listed, revoked, and the usable ones read."""

from __future__ import annotations

from datetime import timedelta

from jqs.auth.issue import KeySpec, issue_key
from jqs.auth.scopes import Scope
from jqs.auth.secrets import secret_hash
from jqs.models import JobFilter
from jqs.port import FindParams
from tests.contract.conftest import Subject
from tests.support.jobs import add


async def test_a_key_is_stored_as_a_hash_and_listed_without_it(subject: Subject) -> None:
    store = subject.store
    issued = await issue_key(
        store,
        KeySpec(name="ci", scopes=frozenset({Scope.JOBS_SUBMIT}), queues=["b", "a", "a"]),
        created_by="cli",
    )
    assert issued.secret_hash == secret_hash(issued.secret)
    assert issued.key.queues == ["a", "b"]
    assert issued.key.scopes == ["jobs:submit"]
    [listed] = await store.key_list()
    assert listed == issued.key
    assert issued.secret not in repr(listed)
    [active] = await store.key_list_active()
    assert active.secret_hash == issued.secret_hash
    assert active.key == issued.key


async def test_revoked_and_expired_keys_are_not_usable_but_stay_listed(subject: Subject) -> None:
    store = subject.store
    now = await subject.now()
    spec = KeySpec(name="short", scopes=frozenset({Scope.JOBS_READ}))
    expiring = await issue_key(
        store, KeySpec(name="expiring", scopes=spec.scopes, expires_at=now + timedelta(seconds=1)),
        created_by=None,
    )  # fmt: skip
    revoked = await issue_key(store, spec, created_by=None)
    kept = await issue_key(store, spec, created_by=None)
    first = await store.key_revoke(revoked.key.id)
    assert first is not None
    assert first.revoked_at is not None
    again = await store.key_revoke(revoked.key.id)
    assert again is not None
    assert again.revoked_at == first.revoked_at, "revoking twice keeps the first time"
    assert await store.key_revoke("key_000000000000") is None
    usable = {active.key.id for active in await store.key_list_active()}
    assert usable == {expiring.key.id, kept.key.id}
    await subject.pass_time(1.1)
    assert {active.key.id for active in await store.key_list_active()} == {kept.key.id}
    assert len(await store.key_list()) == 3


async def test_a_listing_can_be_limited_to_queues_and_tasks(subject: Subject) -> None:
    store = subject.store
    a = await add(store, {"task": "x"}, queue="a")
    await add(store, {"task": "y"}, queue="a")
    await add(store, {"task": "x"}, queue="b")
    untasked = await add(store, {"n": 1}, queue="a")
    found = await store.find(FindParams(JobFilter(queues=frozenset({"a"}), tasks=frozenset({"x"}))))
    assert [job.id for job in found] == [a.id]
    by_task = await store.find(FindParams(JobFilter(task="x", queues=frozenset({"a"}))))
    assert [job.id for job in by_task] == [a.id]
    blank = await store.find(FindParams(JobFilter(queues=frozenset({"a"}), tasks=frozenset({""}))))
    assert [job.id for job in blank] == [untasked.id], "a job without a task is task ''"
