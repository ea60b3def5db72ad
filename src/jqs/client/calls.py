"""Each API call as data: what to send and how to read the answer. `Client` and
`AsyncClient` send the same calls, each with its own I/O; so they cannot drift apart."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import httpx

from jqs.client.config import Retries
from jqs.client.errors import APIError, error_for, retry_after
from jqs.client.models import (
    ApiKey,
    CreatedKey,
    Job,
    JobSpec,
    JobStatus,
    JSONObject,
    Queue,
    QueueSettings,
    build,
    job_of,
)

T = TypeVar("T")
MAX_WAIT = 60.0  # what one request may wait for a job (GET /jobs/{id}?wait=S)
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRIED_STATUSES = frozenset({429, 503})


class _Unset:
    """A setting left as it is (None removes a limit)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and the reading of its answer.

    `replayable`: sending it twice does what sending it once does, so it may be sent again
    after a connection broke mid-request (a connection that never opened is always retried).
    """

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    replayable: bool = True
    timeout: float | None = None  # seconds beyond the client's, for a request that waits


def delay_after(retries: Retries, retry: int, response: httpx.Response) -> float | None:
    """Seconds to wait before asking again after an error answer, or None to raise."""
    if response.status_code not in RETRIED_STATUSES:
        return None
    return retries.delay(retry, retry_after(response))


def delay_after_error(
    retries: Retries, retry: int, error: httpx.TransportError, *, replayable: bool
) -> float | None:
    """Seconds to wait before sending again after the connection failed, or None to raise:
    a request that never left is always sent again, one that may have arrived only when
    sending it twice is harmless."""
    never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
    return retries.delay(retry, None) if never_sent or replayable else None


def outcome(call: Call[T], response: httpx.Response) -> T:
    """What a successful answer means; the error for the others."""
    if response.is_success:
        return call.read(response)
    raise error_for(response)


def _json(response: httpx.Response) -> Any:
    return response.json()


def _job(response: httpx.Response) -> Job:
    return job_of(response.json())


def _jobs(response: httpx.Response) -> list[Job]:
    return [job_of(item) for item in response.json()]


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def submit(
    spec: JobSpec, *, idempotency_key: str | None = None, wait: float | None = None
) -> Call[Job]:
    """POST /jobs, with an Idempotency-Key (made here when not given): sent again, it
    answers with the job the first one made."""
    params = {name: _text(value) for name, value in spec.options().items()}
    if wait is not None:
        params["wait"] = _seconds(min(wait, MAX_WAIT))
    key = idempotency_key or uuid.uuid4().hex
    return Call(
        "POST",
        "/jobs",
        _job,
        params=params,
        json=spec.payload,
        headers={IDEMPOTENCY_HEADER: key},
        timeout=None if wait is None else min(wait, MAX_WAIT),
    )


def submit_many(specs: Iterable[JobSpec]) -> Call[list[Job]]:
    """POST /jobs/batch: the jobs are made together or not at all. The batch route takes
    no Idempotency-Key, so a batch is sent again only when the server said it made none."""
    body = {"jobs": [{"payload": spec.payload, **spec.options()} for spec in specs]}
    return Call("POST", "/jobs/batch", _jobs, json=body, replayable=False)


def get(job_id: int, *, wait: float | None = None) -> Call[Job]:
    """GET /jobs/{id}; with `wait`, once the job has finished or after that many seconds."""
    params = {} if wait is None else {"wait": _seconds(min(wait, MAX_WAIT))}
    timeout = None if wait is None else min(wait, MAX_WAIT)
    return Call("GET", f"/jobs/{int(job_id)}", _job, params=params, timeout=timeout)


def page(
    *,
    limit: int,
    before_id: int | None,
    status: JobStatus | str | None,
    task: str | None,
) -> Call[list[Job]]:
    """GET /jobs: one page, newest first, below `before_id`."""
    params = {"limit": str(limit)}
    if before_id is not None:
        params["before_id"] = str(before_id)
    if status is not None:
        params["status"] = JobStatus(status).value
    if task is not None:
        params["task"] = task
    return Call("GET", "/jobs", _jobs, params=params)


def cancel(job_id: int) -> Call[Job]:
    """POST /jobs/{id}/cancel."""
    return Call("POST", f"/jobs/{int(job_id)}/cancel", _job)


def retry(job_id: int) -> Call[Job]:
    """POST /jobs/{id}/retry."""
    return Call("POST", f"/jobs/{int(job_id)}/retry", _job, replayable=False)


def queues() -> Call[list[Queue]]:
    """GET /queues."""
    return Call("GET", "/queues", lambda r: [build(Queue, item) for item in r.json()])


def set_queue(
    name: str,
    *,
    paused: bool | None = UNSET,
    concurrency_limit: int | None = UNSET,
    rate_limit: float | None = UNSET,
    max_queued: int | None = UNSET,
) -> Call[QueueSettings]:
    """PATCH /queues/{name}: the settings given change; None removes a limit."""
    given = {
        "paused": paused,
        "concurrency_limit": concurrency_limit,
        "rate_limit": rate_limit,
        "max_queued": max_queued,
    }
    body = {name: value for name, value in given.items() if value is not UNSET}
    return Call("PATCH", f"/queues/{name}", lambda r: build(QueueSettings, r.json()), json=body)


def keys() -> Call[list[ApiKey]]:
    """GET /keys."""
    return Call("GET", "/keys", lambda r: [build(ApiKey, item) for item in r.json()])


def create_key(
    name: str,
    scopes: Iterable[str],
    *,
    queues: Iterable[str] | None = None,
    tasks: Iterable[str] | None = None,
    rate_limit: float | None = None,
    expires_in: float | None = None,
    expires_at: datetime | None = None,
) -> Call[CreatedKey]:
    """POST /keys: the answer holds the secret, shown this once."""
    body: JSONObject = {"name": name, "scopes": sorted(scopes)}
    if queues is not None:
        body["queues"] = list(queues)
    if tasks is not None:
        body["tasks"] = list(tasks)
    if rate_limit is not None:
        body["rate_limit"] = rate_limit
    if expires_in is not None:
        body["expires_in"] = expires_in
    if expires_at is not None:
        body["expires_at"] = expires_at.isoformat()
    # Sent twice, it would make two keys.
    return Call("POST", "/keys", lambda r: build(CreatedKey, r.json()), json=body, replayable=False)


def revoke_key(key_id: str) -> Call[ApiKey]:
    """DELETE /keys/{id}: revoking twice is fine."""
    return Call("DELETE", f"/keys/{key_id}", lambda r: build(ApiKey, r.json()))


def rotate_key_webhook_secret(key_id: str) -> Call[JSONObject]:
    """POST /keys/{id}/webhook-secret: a new webhook secret for the key (shown once); the
    old one signs as well until `previous_secret_until`."""
    return Call(
        "POST", f"/keys/{key_id}/webhook-secret", lambda r: dict(r.json()), replayable=False
    )


def spec_of(job: JobSpec | JSONObject) -> JobSpec:
    """A JobSpec, from a payload alone when that is what was given."""
    if isinstance(job, JobSpec):
        return job
    if not isinstance(job, dict):
        raise TypeError(f"a job is a JobSpec or a payload dict, not {type(job).__name__}")
    return JobSpec(job)


def _text(value: Any) -> str:
    return _seconds(value) if isinstance(value, float) else str(value)


def is_wait_unsupported(error: APIError) -> bool:
    """Whether a 422 says the server takes no `wait` (one older than it)."""
    return error.status == 422 and "query.wait" in error.detail and "unknown" in error.detail


def without_wait(call: Call[Job]) -> Call[Job]:
    """The same submit (and Idempotency-Key) without `wait`, for a server that takes none."""
    params = {name: value for name, value in call.params.items() if name != "wait"}
    return Call(call.method, call.path, call.read, params, call.json, call.headers)
