"""LISTEN/NOTIFY: tell workers in other processes that a queue has new work.

The Notifier sends at most one NOTIFY at a time, naming every queue touched since the
previous one, outside of any insert's transaction: committers never wait on PostgreSQL's
notification lock, and a burst of inserts costs one NOTIFY. The Listener keeps a dedicated
connection listening, reconnects after it is lost, and then reports "anything may have
changed" (None), since notifications sent meanwhile are gone. Polling remains the fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from jqs.errors import StoreError
from jqs.logging import get_logger
from jqs.service import LoopService
from jqs.store.database import wrap_errors

log = get_logger(__name__)
CHANNEL = "jqs_jobs"


class Notifier(LoopService):
    """Coalesces `touch(queue)` calls into NOTIFY statements."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
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
                        "SELECT pg_notify($1, $2)", CHANNEL, ",".join(sorted(queues))
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
    ) -> None:
        self._dsn = dsn
        self._on_notify = on_notify
        self._check_interval = check_interval
        self.name = "listener"
        self.connected = asyncio.Event()

    def _deliver(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        for queue in str(payload).split(","):
            if queue:
                self._on_notify(queue)

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
