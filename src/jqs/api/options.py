"""Job options (never in the payload): validation and resolution into EnqueueOptions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.config import JsonDict

from jqs.api.problems import ProblemError
from jqs.models import EnqueueOptions
from jqs.tasks.defaults import JobDefaults
from jqs.tasks.names import QUEUE_NAME

MAX_TIMEOUT = 7 * 24 * 3600.0
MAX_DELAY = 366 * 24 * 3600.0
PRIORITY_MIN, PRIORITY_MAX = -32768, 32767


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
    max_attempts: Annotated[int, Field(ge=1, le=1000), _INTEGRAL] | None = None
    timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT)

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
        msg = err["msg"].removeprefix("Value error, ")
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
    if not given:
        return _NO_OPTIONS
    try:
        return JobOptions.model_validate(given)
    except ValidationError as exc:
        errors = describe(exc, "query")
        detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)
        raise ProblemError(422, detail, errors=errors) from None


def task_of(payload: dict[str, Any]) -> str | None:
    """payload.task when it is a string."""
    task = payload.get("task")
    return task if isinstance(task, str) else None


def _openapi_parameters() -> list[dict[str, Any]]:
    schema = JobOptions.model_json_schema()
    descriptions = {
        "queue": "queue (default: the task's, or `default`)",
        "priority": "higher runs first (default 0)",
        "run_at": "RFC 3339 time with a zone; not started before it",
        "delay": "seconds from now before it may start (not with run_at)",
        "max_attempts": "attempts before the job fails (default: the task's, or settings)",
        "timeout": "seconds one attempt may run",
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
