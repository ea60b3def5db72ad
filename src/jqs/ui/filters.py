"""The jobs page's filters: read from the query string, and what they search.

A payload filter is written `user_id = 42` (a dotted name reaches into objects:
`customer.country = "fr"`), several joined by `and` or put on lines of their own, or given
as one JSON object. Values are JSON when they parse as JSON, else text: `42` is a number,
`"42"` and `abc` are text. Each becomes the object the payload must contain (`@>`).

Without an index on payloads, a search reads a window of the most recent job ids
(`WINDOW_IDS`), and the page says how far back that reached; "older" moves the window back.
Status and task alone are served by their indexes and search every job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from jqs.auth.principal import Principal
from jqs.jsonutil import RawJSON
from jqs.models import JobStatus
from jqs.port import JobSearch

# Job ids a windowed search reads at most (the primary key's range): what keeps a payload
# search within the page's time budget over any size of history.
WINDOW_IDS = 50_000
PAGE_SIZE = 50
_JOINER = re.compile(r"\s+and\s+|\n|;", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$")


class FilterError(ValueError):
    """A filter that cannot be read; its message says why, for the page."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What the jobs page was asked for, as the form holds it."""

    status: str = ""
    queue: str = ""
    task: str = ""
    payload: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Filters:
        """The filters of a query string (unknown parameters are ignored)."""
        return cls(**{name: query.get(name, "").strip() for name in _FIELDS})

    @property
    def windowed(self) -> bool:
        """Whether the search reads a window of recent ids (else the indexes serve it)."""
        return bool(self.queue or self.payload or self.since or self.until)

    def query(self, **extra: object) -> str:
        """The query string of these filters (and `extra`), without empty values."""
        values: dict[str, object] = {name: getattr(self, name) for name in _FIELDS}
        values.update(extra)
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})

    def search(self, principal: Principal) -> JobSearch:
        """The store's search for these filters, within what the key may see."""
        try:
            status = JobStatus(self.status) if self.status else None
        except ValueError:
            raise FilterError(f"no status is called {self.status!r}") from None
        return JobSearch(
            status=status,
            queue=self.queue or None,
            task=self.task or None,
            contains=contains(self.payload) if self.payload else None,
            since=_moment(self.since, "from"),
            until=_moment(self.until, "to"),
            queues=principal.queues,
            tasks=principal.tasks,
        )

    def without_payload(self) -> Filters:
        """The same filters but the payload's."""
        return replace(self, payload="")


_FIELDS = ("status", "queue", "task", "payload", "since", "until")


def contains(text: str) -> RawJSON:
    """The JSON object a payload filter asks the payload to contain."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise FilterError(f"the payload filter is not a JSON object: {exc}") from None
        if not isinstance(value, dict):
            raise FilterError("the payload filter is not a JSON object")
        return RawJSON(orjson.dumps(value))
    wanted: dict[str, Any] = {}
    for clause in _JOINER.split(stripped):
        if not clause.strip():
            continue
        name, sign, value_text = clause.partition("=")
        name = name.strip()
        if not sign or not _NAME.match(name):
            raise FilterError(
                f"cannot read {clause.strip()!r}: write name = value (e.g. user_id = 42)"
            )
        _put(wanted, name.split("."), _value(value_text.strip()))
    if not wanted:
        raise FilterError("the payload filter is empty")
    return RawJSON(orjson.dumps(wanted))


def _value(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _put(target: dict[str, Any], path: list[str], value: Any) -> None:
    for name in path[:-1]:
        inner = target.setdefault(name, {})
        if not isinstance(inner, dict):
            raise FilterError(f"{name!r} is given both a value and fields")
        target = inner
    target[path[-1]] = value


def _moment(text: str, what: str) -> datetime | None:
    """A time from the form (a datetime-local input: UTC unless it names an offset)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(f"the {what} time {text!r} is not a date and time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
