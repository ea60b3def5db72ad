"""Events: a job's timeline (JSON), and live streams of one job or many (SSE).

Each event is an `EventView` (jqs.events.shape) in JSON. In a stream, its `id:` line is
what `Last-Event-ID` takes to resume after it: the event's id in one job's stream (a job's
ids are in the order its events were written), the log's position "xid-id" in the stream
of many jobs (ids are not in commit order across jobs; see docs/events.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from starlette.responses import Response, StreamingResponse

from jqs.api.auth import ReadKey, require_queue, require_task, scope_doc
from jqs.api.jobs import JOB_PATH, reachable
from jqs.api.openapi import problem_responses
from jqs.api.options import MAX_TASK_LENGTH
from jqs.api.problems import ProblemError
from jqs.api.render import JSONResponse
from jqs.api.state import ApiState, api_state
from jqs.auth.scopes import Scope
from jqs.errors import JobNotFound
from jqs.events import EventFilter, EventView
from jqs.events.follow import Follow, follow_job, follow_log
from jqs.jsonutil import dumps
from jqs.models import EventCursor, EventType, JobEvent
from jqs.port import MAX_JOB_ID, JobEventsRead
from jqs.tasks.names import QUEUE_NAME

router = APIRouter(tags=["events"])
State = Annotated[ApiState, Depends(api_state)]
JobId = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="job id")]
SSE = "text/event-stream"
MAX_TIMELINE = 1000
MAX_FILTERS = 50  # names per filter parameter
# Sent first: how long a client waits before it reconnects, in milliseconds.
_RETRY = b"retry: 1000\n\n"
_KEEPALIVE = b": keep-alive\n\n"
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# Each event of a stream: `data` is the event's JSON (an EventView).
_SSE_CONTENT = {
    SSE: {
        "schema": {
            "type": "object",
            "required": ["id", "event", "data"],
            "properties": {
                "id": {"type": "string", "description": "what Last-Event-ID takes"},
                "event": {"$ref": "#/components/schemas/EventType"},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": "#/components/schemas/EventView"},
                },
            },
        }
    }
}


@router.get(
    f"{JOB_PATH}/events",
    operation_id="get_job_events",
    summary="A job's events: its timeline, or a live stream of them",
    response_model=list[EventView],
    responses={
        200: {
            "description": "The job's events, oldest first. Asked for `text/event-stream` "
            "(Accept), an SSE stream of them that ends with the job's final event; each "
            "`id:` is the event's id, which Last-Event-ID takes to resume after it",
            "content": _SSE_CONTENT,
        },
        **problem_responses(404, 422, 503),
    },
    openapi_extra=scope_doc(Scope.JOBS_READ),
)
async def job_events(
    request: Request,
    state: State,
    principal: ReadKey,
    job_id: JobId,
    after: Annotated[
        int, Query(ge=0, le=MAX_JOB_ID, description="only the events after this event id")
    ] = 0,
    limit: Annotated[
        int, Query(ge=1, le=MAX_TIMELINE, description="at most this many events")
    ] = MAX_TIMELINE,
    last_event_id: Annotated[
        str,
        Header(
            alias="Last-Event-ID",
            pattern=r"^([0-9]{1,18})?$",
            description="a stream resumes after this event id (instead of `after`)",
        ),
    ] = "",
) -> Response:
    """A job's events, oldest first; or, asked for `text/event-stream`, a live stream."""
    job = await reachable(state, principal, job_id) or await state.store.get(job_id)
    if SSE not in request.headers.get("accept", ""):
        events = await state.store.events_of_job(JobEventsRead(job.id, after, limit))
        return JSONResponse([EventView.of(event) for event in events])
    if last_event_id:
        after = _event_id(last_event_id)

    async def finished() -> bool:
        try:
            return (await state.store.get(job_id)).status.finished
        except JobNotFound:
            return True  # deleted meanwhile: nothing more will come

    follow = Follow(EventFilter(job_id=job_id), _tick(state))
    stream = follow_job(state.events(), state.store, follow, after, finished)
    return _stream(state, stream, lambda event: str(event.id))


@router.get(
    "/events",
    operation_id="stream_events",
    summary="A live stream of many jobs' events (SSE)",
    responses={
        200: {
            "description": "An SSE stream of the events that match, from now or after "
            "Last-Event-ID; each `id:` is the event's position in the log, which "
            "Last-Event-ID takes to resume after it",
            "content": _SSE_CONTENT,
        },
        **problem_responses(422, 503),
    },
    response_class=StreamingResponse,
    openapi_extra=scope_doc(Scope.JOBS_READ),
)
async def stream_events(
    state: State,
    principal: ReadKey,
    queue: Annotated[
        list[Annotated[str, Query(pattern=QUEUE_NAME.pattern)]] | None,
        Query(max_length=MAX_FILTERS, description="only jobs of these queues (repeatable)"),
    ] = None,
    task: Annotated[
        list[Annotated[str, Query(min_length=1, max_length=MAX_TASK_LENGTH)]] | None,
        Query(max_length=MAX_FILTERS, description="only jobs of these tasks (repeatable)"),
    ] = None,
    type: Annotated[
        list[EventType] | None,
        Query(max_length=MAX_FILTERS, description="only these event types (repeatable)"),
    ] = None,
    last_event_id: Annotated[
        str,
        Header(
            alias="Last-Event-ID",
            pattern=r"^([0-9]{1,19}-[0-9]{1,18})?$",
            description="resume after this position (an `id:` of this stream); "
            "without it (or empty), the stream starts now",
        ),
    ] = "",
) -> Response:
    """The events of every job the key may see that match the filters, as they come."""
    for name in queue or ():
        require_queue(principal, name)
    for name in task or ():
        require_task(principal, name)
    # Now, unless resuming: taken before the answer starts, so that a client which has
    # the first line of the stream gets every event written after it.
    if not last_event_id:
        after = await state.store.events_now()
    else:
        after = _position(last_event_id)
    event_filter = EventFilter(
        queues=frozenset(queue) if queue else principal.queues,
        tasks=frozenset(task) if task else principal.tasks,
        types=frozenset(type) if type else None,
    )
    stream = follow_log(state.events(), state.store, Follow(event_filter, _tick(state)), after)
    return _stream(state, stream, lambda event: str(event.cursor))


def _event_id(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_JOB_ID:
        raise ProblemError(422, "header.Last-Event-ID: must be an event id of this stream")
    return value


def _position(text: str) -> EventCursor:
    try:
        return EventCursor.parse(text)
    except ValueError:
        raise ProblemError(
            422, "header.Last-Event-ID: must be an `id:` of this stream, such as 1234-56"
        ) from None


def _tick(state: ApiState) -> float:
    return min(state.streams.keepalive, state.streams.max_duration)


def _stream(
    state: ApiState,
    events: AsyncIterator[JobEvent | None],
    event_id: Callable[[JobEvent], str],
) -> StreamingResponse:
    return StreamingResponse(_frames(state, events, event_id), media_type=SSE, headers=_HEADERS)


async def _frames(
    state: ApiState,
    events: AsyncIterator[JobEvent | None],
    event_id: Callable[[JobEvent], str],
) -> AsyncIterator[bytes]:
    """SSE frames of `events`, a keep-alive comment for each None; over after the
    stream's longest duration (checked at each event or keep-alive)."""
    clock = state.events().clock
    until = clock.monotonic() + state.streams.max_duration
    yield _RETRY
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            if event is None:
                yield _KEEPALIVE
            else:
                yield _frame(event, event_id(event))
            if clock.monotonic() >= until:
                return


def _frame(event: JobEvent, event_id: str) -> bytes:
    data = dumps(EventView.of(event))
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        event_id.encode(),
        event.type.value.encode(),
        data,
    )
