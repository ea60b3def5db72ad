"""The client's exceptions, and the one for each problem answer (RFC 9457 problem+json)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from jqs.client.models import Job


class JQSError(Exception):
    """Anything the client raises."""


class TransportError(JQSError):
    """The server could not be reached, or the connection broke before it answered."""


class APIError(JQSError):
    """The server answered with an error: `status`, and its problem document's `title`,
    `detail` and any further members (`problem`)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str = "",
        problem: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if title else f"{status}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.problem = problem or {}
        self.retry_after = retry_after


class ValidationError(APIError):
    """400, 413, 415 or 422: the request was refused as it stands. `errors` names each
    bad part ({loc, msg}) when the server said which."""

    @property
    def errors(self) -> list[dict[str, str]]:
        found = self.problem.get("errors")
        return found if isinstance(found, list) else []


class Unauthorized(APIError):
    """401: no API key was sent, or it is unknown, revoked or expired."""


class Forbidden(APIError):
    """403: the key may not do this. `missing_scope` names the scope it lacks, if that is
    why."""

    @property
    def missing_scope(self) -> str | None:
        scope = self.problem.get("missing_scope")
        return scope if isinstance(scope, str) else None


class NotFound(APIError):
    """404: no such job, key or queue (or the key may not see it)."""


class Conflict(APIError):
    """409: the job is not in a state that allows this (e.g. cancel a finished job)."""


class RateLimited(APIError):
    """429: the queue is full or the key is past its rate limit, after the retries."""


class Unavailable(APIError):
    """503: the server or its database cannot take the request now, after the retries."""


class ServerError(APIError):
    """Any other 5xx."""


class WaitTimeout(JQSError):
    """The job did not finish within the time given; `job` is how it stood last."""

    def __init__(self, job: Job, seconds: float) -> None:
        super().__init__(f"job {job.id} is still {job.status.value} after {seconds:g} s")
        self.job = job


class InvalidJob(JQSError, ValueError):
    """`enqueue` refused a job before writing it: the message says what is wrong."""


class EnqueueError(JQSError):
    """The database refused the job; the caller's transaction is still usable. `sqlstate` is
    PostgreSQL's code for the error (`55P03` for a lock timeout, `57014` for a statement
    timeout, ...), when the database gave one."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


_BY_STATUS: dict[int, type[APIError]] = {
    400: ValidationError,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: ValidationError,
    415: ValidationError,
    422: ValidationError,
    429: RateLimited,
    503: Unavailable,
}


def retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (a number or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    date = response.headers.get("Date")
    now = parsedate_to_datetime(date) if date else datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def error_for(response: httpx.Response) -> APIError:
    """The exception for an error answer, from its problem document when it has one."""
    problem: dict[str, Any] = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        problem = body
    status = response.status_code
    detail = problem.get("detail")
    if not isinstance(detail, str):
        detail = response.text.strip()[:500] or response.reason_phrase
    title = problem.get("title")
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    return kind(
        status,
        detail,
        title=title if isinstance(title, str) else response.reason_phrase,
        problem=problem,
        retry_after=retry_after(response),
    )


def transport_error(url: str, exc: httpx.TransportError) -> TransportError:
    """The client's error for a failed connection, saying what failed in a few words."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        reason = f"cannot connect ({text})"
    elif isinstance(exc, httpx.TimeoutException):
        reason = f"no answer in time ({type(exc).__name__})"
    else:
        reason = text
    return TransportError(f"{url}: {reason}")
