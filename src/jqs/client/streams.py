"""Event streams (SSE): which URL, and how to resume after a dropped connection."""

from __future__ import annotations

from dataclasses import dataclass

from httpx_sse import ServerSentEvent

from jqs.client.models import Event, event_of

EVENT_STREAM = "text/event-stream"


@dataclass(slots=True)
class StreamState:
    """Where a stream stands: the last `id:` read (sent as Last-Event-ID on reconnecting),
    and whether the job's final event came (a job's stream then ends)."""

    path: str
    params: dict[str, str]
    last_event_id: str | None = None
    per_job: bool = False
    done: bool = False

    def headers(self) -> dict[str, str]:
        headers = {"Accept": EVENT_STREAM, "Cache-Control": "no-cache"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def read(self, sse: ServerSentEvent) -> Event | None:
        """The event an SSE message carries, None for one that carries none."""
        if sse.id:
            self.last_event_id = sse.id
        if not sse.data:
            return None
        event = event_of(sse.json(), sse.id)
        if self.per_job and event.final:
            self.done = True
        return event


def stream_of(
    job_id: int | None,
    *,
    queue: str | None,
    task: str | None,
    type: str | None,
    last_event_id: str | None,
) -> StreamState:
    """One job's events (the stream ends after its final event), or every job's."""
    if job_id is not None:
        return StreamState(f"/jobs/{int(job_id)}/events", {}, last_event_id, per_job=True)
    given = {"queue": queue, "task": task, "type": type}
    params = {name: value for name, value in given.items() if value is not None}
    return StreamState("/events", params, last_event_id)
