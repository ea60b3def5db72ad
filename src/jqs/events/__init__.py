"""Events as clients follow them: one reader of the log per process, fanned out in memory
to the requests that wait for a job or stream its events (jqs.events.feed), and the shape
every event has on the wire (jqs.events.shape)."""

from jqs.events.feed import EventFeed, FeedSettings, StreamEnded, Subscription, Waiter
from jqs.events.filter import EventFilter
from jqs.events.shape import EventView

__all__ = [
    "EventFeed",
    "EventFilter",
    "EventView",
    "FeedSettings",
    "StreamEnded",
    "Subscription",
    "Waiter",
]
