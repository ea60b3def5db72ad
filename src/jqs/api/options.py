"""Job options (never in the payload): validation and resolution into EnqueueOptions."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from jqs.api.problems import ProblemError
from jqs.jsonutil import dumps
from jqs.models import EnqueueOptions
from jqs.tasks.defaults import JobDefaults
from jqs.tasks.names import QUEUE_NAME, error_message
from jqs.webhooks.destination import MAX_URL_LENGTH, URL_PATTERN

MAX_TIMEOUT = 7 * 24 * 3600.0
MAX_DELAY = 366 * 24 * 3600.0
PRIORITY_MIN, PRIORITY_MAX = -32768, 32767
MAX_TASK_LENGTH = 200  # as GET /jobs?task= takes
MAX_ATTEMPTS = 1000
RUN_AT_FORMAT = "an RFC 3339 time with an offset, such as 2030-01-01T09:00:00Z"


def _integral(value: object) -> object:
    """A number without a fraction is an integer, as JSON Schema counts: 3.0 is 3 (a body's
    options are validated strictly, which would refuse it)."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


# After the bounds: a validator before them would hide them from the JSON schema.
_INTEGRAL = BeforeValidator(_integral)
_NOT_NULL: JsonDict = {"not": {"type": "null"}}
_BOTH_START_TIMES: JsonDict = {
    "required": ["run_at", "delay"],
    "properties": {"run_at": _NOT_NULL, "delay": _NOT_NULL},
}


class JobOptions(BaseModel):
    """What a client may say about how a job runs. Priority: higher runs first."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # run_at and delay both say when to start: not both (see _one_start_time).
        json_schema_extra={"not": _BOTH_START_TIMES},
    )

    queue: str | None = Field(default=None, pattern=QUEUE_NAME.pattern)
    priority: Annotated[int, Field(ge=PRIORITY_MIN, le=PRIORITY_MAX), _INTEGRAL] = 0
    run_at: AwareDatetime | None = None
    delay: float | None = Field(default=None, ge=0, le=MAX_DELAY)
    max_attempts: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS), _INTEGRAL] | None = None
    timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT)
    callback_url: str | None = Field(
        default=None, min_length=1, max_length=MAX_URL_LENGTH, pattern=URL_PATTERN
    )

    @field_validator("run_at", mode="before")
    @classmethod
    def _run_at_is_text(cls, value: object) -> object:
        # pydantic would read a number, or a string of one (?run_at=0.5), as Unix seconds or
        # milliseconds, by its size. Parsed here, a string also passes a strict validation.
        if value is None or isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.upper())
            except ValueError:
                pass
        raise ValueError(f"must be {RUN_AT_FORMAT}, given as a string")

    @field_validator("run_at")
    @classmethod
    def _run_at_in_utc(cls, value: datetime | None) -> datetime | None:
        # Stored and answered in UTC; an offset may push a time past year 1 or 9999, which
        # neither Python nor the driver can hold.
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError(
                "must lie between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z "
                "once its offset is applied"
            ) from None

    @model_validator(mode="after")
    def _one_start_time(self) -> JobOptions:
        if self.run_at is not None and self.delay is not None:
            raise ValueError("give run_at or delay, not both")
        return self

    def resolve(self, task: str | None, defaults: JobDefaults) -> EnqueueOptions:
        """The options of a new job of `task`: these, else the task's, else the settings'."""
        max_attempts, timeout = defaults.resolve(
            task, max_attempts=self.max_attempts, timeout=self.timeout
        )
        return EnqueueOptions(
            queue=defaults.queue(task, self.queue),
            priority=self.priority,
            run_at=self.run_at,
            delay=self.delay or 0.0,
            max_attempts=max_attempts,
            timeout=timeout,
            callback_url=self.callback_url,
        )

    def given(self) -> dict[str, Any]:
        """The options the client set, for telling two requests apart."""
        return self.model_dump(mode="json", exclude_unset=True)


def describe(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Pydantic errors as [{"loc": "jobs[3].payload", "msg": ...}] for a problem document."""
    found = []
    for err in exc.errors():
        loc = prefix
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = error_message(err).removeprefix("Value error, ")
        found.append({"loc": loc or "body", "msg": msg})
    return found


_NO_OPTIONS = JobOptions()
_OPTION_NAMES = tuple(JobOptions.model_fields)


def options_from_query(query: Mapping[str, str]) -> JobOptions:
    """JobOptions from a request's query parameters; 422 naming the bad one.

    Parsed here rather than by FastAPI's per-parameter machinery: this is the hottest path
    of the service, and most requests carry no options at all.
    """
    if not query:
        return _NO_OPTIONS
    given = {name: query[name] for name in _OPTION_NAMES if name in query}
    if len(given) != len(query):
        raise unknown_parameters(query, _OPTION_NAMES, "POST /jobs")
    if not given:
        return _NO_OPTIONS
    try:
        return JobOptions.model_validate(given)
    except ValidationError as exc:
        errors = describe(exc, "query")
        detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)
        raise ProblemError(422, detail, errors=errors) from None


def unknown_parameters(query: Mapping[str, str], known: Sequence[str], route: str) -> ProblemError:
    """The 422 for query parameters `route` does not take, so that a typo is not ignored."""
    unknown = [name for name in query if name not in known]
    errors = []
    for name in unknown[:10]:  # enough to correct; the answer stays small
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        errors.append({"loc": f"query.{name}", "msg": f"unknown query parameter{hint}"})
    takes = f"it takes {', '.join(known)}" if known else "it takes none"
    detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)
    return ProblemError(422, f"{detail} ({route}: {takes})", errors=errors)


def task_of(payload: dict[str, Any]) -> str | None:
    """payload.task when it is a string; ValueError when it is too long to be a task name.

    The database indexes each finished job by its task (the text of payload.task, whatever
    its JSON type), and an index entry has a size limit: a longer task would be accepted,
    then fail every write that ends the job, for ever.
    """
    task = payload.get("task")
    if type(task) is str:
        if len(task) > MAX_TASK_LENGTH:
            raise ValueError(f"is {len(task)} characters long; at most {MAX_TASK_LENGTH}")
        return task
    if task is not None and len(dumps(task)) > MAX_TASK_LENGTH:
        raise ValueError(f"as JSON text is longer than {MAX_TASK_LENGTH} characters")
    return None


def _openapi_parameters() -> list[dict[str, Any]]:
    schema = JobOptions.model_json_schema()
    descriptions = {
        "queue": "queue (default: the task's, or `default`)",
        "priority": "higher runs first (default 0)",
        "run_at": "RFC 3339 time with a zone; not started before it",
        "delay": "seconds from now before it may start (not with run_at)",
        "max_attempts": "attempts before the job fails (default: the task's, or settings)",
        "timeout": "seconds one attempt may run",
        "callback_url": "where to POST the job's final event (job.completed, job.failed or "
        "job.cancelled), signed with the submitting API key's webhook secret",
    }
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": descriptions[name],
            "schema": _not_null(schema["properties"][name]),
        }
        for name in _OPTION_NAMES
    ]


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional option's schema without its `null`: a query parameter is left out, not
    sent as null."""
    branches = [branch for branch in schema.get("anyOf", ()) if branch != {"type": "null"}]
    if len(branches) == 1:
        return {**branches[0], **{k: v for k, v in schema.items() if k not in ("anyOf", "default")}}
    return schema


OPENAPI_PARAMETERS = _openapi_parameters()
