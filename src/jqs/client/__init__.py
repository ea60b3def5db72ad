"""jqs.client: the JQS API from Python, and jobs enqueued in the application's own
transaction.

    from jqs.client import Client

    with Client("http://127.0.0.1:8080", api_key="...") as jqs:  # or JQS_URL, JQS_API_KEY
        job = jqs.submit({"task": "send_email", "to": "a@example.com"}, queue="emails")
        done = jqs.wait(job.id, timeout=60)

`AsyncClient` has the same methods, to await. `enqueue` writes a job on the application's
asyncpg connection or psycopg AsyncConnection, inside its transaction, and `enqueue_sync` on
a psycopg Connection (jqs.client.transaction).

Every error answer (application/problem+json) is raised as the exception for its status,
and a failed connection as TransportError:

    JQSError
     ├── TransportError       the server could not be reached, or the connection broke
     ├── APIError             the server answered with an error: .status, .title, .detail
     │    ├── ValidationError    400, 413, 415, 422: .errors names each bad part
     │    ├── Unauthorized       401: no key, or an unknown, revoked or expired one
     │    ├── Forbidden          403: .missing_scope names the scope the key lacks
     │    ├── NotFound           404
     │    ├── Conflict           409: e.g. cancelling a finished job
     │    ├── RateLimited        429, after the retries: .retry_after
     │    ├── Unavailable        503, after the retries: .retry_after
     │    └── ServerError        any other 5xx
     ├── WaitTimeout          the job did not finish in time: .job
     ├── InvalidJob           enqueue refused the job before writing it (also a ValueError)
     └── EnqueueError         the database refused the job; the transaction is still usable

429 and 503 are retried after the server's Retry-After (at most `Retries.attempts` times,
each wait at most `Retries.max_wait`), and so is a request whose connection failed when
sending it again is harmless. Each submit carries an Idempotency-Key, so a submit sent
again never makes a second job.

This package imports nothing of the JQS server: it installs alone as `jqs-client`.
"""

from jqs.client.aio import AsyncClient
from jqs.client.calls import UNSET
from jqs.client.config import ClientConfig, Retries
from jqs.client.errors import (
    APIError,
    Conflict,
    EnqueueError,
    Forbidden,
    InvalidJob,
    JQSError,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    Unavailable,
    ValidationError,
    WaitTimeout,
)
from jqs.client.models import (
    ApiKey,
    CreatedKey,
    Event,
    EventType,
    Job,
    JobSpec,
    JobStatus,
    Progress,
    Queue,
    QueueSettings,
)
from jqs.client.sync import Client
from jqs.client.transaction import Enqueued, enqueue, enqueue_sync
from jqs.client.version import VERSION as __version__

__all__ = [
    "UNSET",
    "APIError",
    "ApiKey",
    "AsyncClient",
    "Client",
    "ClientConfig",
    "Conflict",
    "CreatedKey",
    "EnqueueError",
    "Enqueued",
    "Event",
    "EventType",
    "Forbidden",
    "InvalidJob",
    "JQSError",
    "Job",
    "JobSpec",
    "JobStatus",
    "NotFound",
    "Progress",
    "Queue",
    "QueueSettings",
    "RateLimited",
    "Retries",
    "ServerError",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "ValidationError",
    "WaitTimeout",
    "__version__",
    "enqueue",
    "enqueue_sync",
]
