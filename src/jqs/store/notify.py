"""LISTEN/NOTIFY: tell workers in other processes that a queue has new work.

The Notifier sends at most one NOTIFY at a time, naming every queue touched since the
previous one, outside of any insert's transaction: committers never wait on PostgreSQL's
notification lock, and a burst of inserts costs one NOTIFY. The Listener keeps a dedicated
connection listening, reconnects after it is lost, and then reports "anything may have
changed" (None), since notifications sent meanwhile are gone. Polling remains the fallback.

A notification also names the process that sent it, as a last element `@origin` (queue
names cannot hold `@`; listeners that do not know the mark take it for a queue they do not
serve). A process wakes its own workers directly when it enqueues, so a Listener given its
Notifier's origin drops those echoes: each would send the pool to claim again, for jobs
already claimed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import asyncpg

from jqs.errors import StoreError
from jqs.logging import get_logger
from jqs.service import LoopService
from jqs.store.database import wrap_errors

log = get_logger(__name__)
CHANNEL = "jqs_jobs"
ORIGIN_MARK = "@"


def new_origin() -> str:
    """A token naming one process's notifications."""
    return uuid.uuid4().hex[:12]


class Notifier(LoopService):
    """Coalesces `touch(queue)` calls into NOTIFY statements."""

    def __init__(self, pool: asyncpg.Pool, *, origin: str | None = None) -> None:
        self._pool = pool
        self._origin = ORIGIN_MARK + (origin or new_origin())
        self._pending: set[str] = set()
        self._event = asyncio.Event()
        self.name = "notifier"

    def touch(self, queue: str) -> None:
        """Queue `queue` has work now; other processes will hear of it shortly."""
        self._pending.add(queue)
        self._event.set()

    async def _loop(self) -> None:
        while True:
            await self._event.wait()
            self._event.clear()
            queues, self._pending = self._pending, set()
            try:
                with wrap_errors():
                    await self._pool.execute(
                        "SELECT pg_notify($1, $2)",
                        CHANNEL,
                        ",".join([*sorted(queues), self._origin]),
                    )
            except StoreError as exc:
                log.warning("notify_failed", error=str(exc))  # pollers will find the work


class Listener(LoopService):
    """Calls `on_notify(queue)` for each queue named in a notification; None after a
    reconnect (something may have been missed)."""

    def __init__(
        self,
        dsn: str,
        on_notify: Callable[[str | None], None],
        *,
        check_interval: float = 1.0,
        origin: str | None = None,
    ) -> None:
        self._dsn = dsn
        self._on_notify = on_notify
        self._own = None if origin is None else ORIGIN_MARK + origin
        self._check_interval = check_interval
        self.name = "listener"
        self.connected = asyncio.Event()

    def _deliver(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        names = str(payload).split(",")
        if self._own is not None and names[-1] == self._own:
            return  # an echo of this process's own enqueue
        for name in names:
            if name and not name.startswith(ORIGIN_MARK):
                self._on_notify(name)

    async def _loop(self) -> None:
        delay = 0.1
        first = True
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(  # its own: a pooled one could not keep LISTEN
                    self._dsn, server_settings={"application_name": "jqs"}, timeout=10
                )
                await conn.add_listener(CHANNEL, self._deliver)
                self.connected.set()
                if not first:
                    log.info("listener_reconnected")
                    self._on_notify(None)
                first = False
                delay = 0.1
                while not conn.is_closed():
                    await asyncio.sleep(self._check_interval)
                    # A cheap round trip notices a connection the server dropped.
                    await conn.execute("SELECT 1")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("listener_disconnected", error=repr(exc), retry_in=delay)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
