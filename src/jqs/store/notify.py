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

Nobody else may be listening: one `jqs serve` whose own workers take its jobs. Listeners
connect under their own application_name, which pg_stat_activity shows to every role, and
the Notifier sends nothing while no listener but its own process's is connected (looked up
again at most every OTHERS_RECHECK_SECONDS). At 1,000 jobs/s through one `jqs serve` that
spared a statement per job. A worker that starts meanwhile may miss a notification for up
to that long; it claims when it starts, and its poll finds the rest.

On the events channel a notification says "events were written" (`log`), and may also
name jobs whose final event has committed (`=<job id>` each, `ended_name`): a process
waiting for one of them answers at once. Those names are extras, sent as far as they fit in
PostgreSQL's payload limit (PAYLOAD_LIMIT); when some did not fit, the notification says
so (`=?`, UNNAMED_ENDS), and a listener with waiters asks the store which of their jobs
ended. A listener that does not know these names takes each for another "events were
written".

After it connects, first or again, a Listener reports None: notifications sent before the
connection listened are gone, so anything may have changed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Sequence

import asyncpg

from jqs.errors import StoreError
from jqs.logging import get_logger
from jqs.service import LoopService
from jqs.store.db import CONNECTION_ERRORS, Db
from jqs.store.queries import q

log = get_logger(__name__)
CHANNEL = "jqs_jobs"
EVENTS_CHANNEL = "jqs_events"  # events were written (jqs.events.feed reads them)
ORIGIN_MARK = "@"
LISTENER_APP = "jqs-listener"
EVENTS_LISTENER_APP = "jqs-events-listener"
OTHERS_RECHECK_SECONDS = 1.0
END_MARK = "="  # on the events channel: `=<job id>`, that job's final event has committed
UNNAMED_ENDS = "=?"  # on the events channel: more jobs ended than the notification names
PAYLOAD_LIMIT = 8000  # bytes: a NOTIFY payload must be shorter than this


def ended_name(job_id: int) -> str:
    """How a notification on the events channel names a job whose end has committed."""
    return f"{END_MARK}{job_id}"


def ended_job(name: str) -> int | None:
    """The job a name of an events notification says has ended, or None (`log`, say)."""
    if not name.startswith(END_MARK):
        return None
    try:
        return int(name[len(END_MARK) :])
    except ValueError:
        return None


def hear_events(
    wake: Callable[[], None],
    ended: Callable[[Sequence[int]], None],
    recheck: Callable[[], None],
) -> Callable[[str | None], None]:
    """A Listener's callback on the events channel: `ended([job id])` for each job that a
    notification names as ended, `recheck()` and `wake()` when ends went unnamed (and once
    the listener has connected), `wake()` for anything else."""

    def heard(name: str | None) -> None:
        job_id = None if name is None else ended_job(name)
        if job_id is not None:
            ended((job_id,))
            return
        if name is None or name == UNNAMED_ENDS:
            recheck()
        wake()

    return heard


def payload(
    names: set[str],
    extras: list[str],
    origin: str,
    *,
    unnamed: str | None = None,
    dropped: bool = False,
) -> str:
    """A notification's text: `names`, then as many `extras` as fit, then `origin` last,
    shorter than PAYLOAD_LIMIT bytes. The extras left out are dropped; when any are (or
    `dropped` says that some were already), `unnamed` is said in their place, if given
    (room is kept for it)."""
    parts = sorted(names)
    size = len(",".join([*parts, origin]).encode())
    room = PAYLOAD_LIMIT - (len(unnamed.encode()) + 1 if unnamed is not None else 0)
    for extra in extras:
        cost = len(extra.encode()) + 1
        if size + cost >= room:
            dropped = True
            break
        parts.append(extra)
        size += cost
    if dropped and unnamed is not None:
        parts.append(unnamed)
    parts.append(origin)
    return ",".join(parts)


def new_origin() -> str:
    """A token naming one process's notifications."""
    return uuid.uuid4().hex[:12]


class Notifier(LoopService):
    """Coalesces `touch(queue)` (and `mention(name)`) calls into NOTIFY statements."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        origin: str | None = None,
        own_listener: Listener | None = None,
        recheck_seconds: float = OTHERS_RECHECK_SECONDS,
        channel: str = CHANNEL,
        application: str = LISTENER_APP,
        unnamed: str | None = None,
    ) -> None:
        self._db = Db(pool)
        self._unnamed = unnamed  # said when mentioned names had to be left out
        self._channel = channel
        self._application = application
        self._origin = ORIGIN_MARK + (origin or new_origin())
        self._own_listener = own_listener
        self._recheck_seconds = recheck_seconds
        self._pending: set[str] = set()
        self._extras: list[str] = []
        self._extras_bytes = 0
        self._dropped = False
        self._event = asyncio.Event()
        self._others_known_until = float("-inf")
        self._others_listen = True
        self.name = "notifier"

    def touch(self, queue: str) -> None:
        """Queue `queue` has work now; other processes will hear of it shortly."""
        self._pending.add(queue)
        self._event.set()

    def mention(self, names: Iterable[str]) -> None:
        """Say `names` too in the next notification, as far as they fit in it; those that
        do not are dropped (listeners must be able to do without them)."""
        before = len(self._extras)
        for name in names:
            if self._extras_bytes >= PAYLOAD_LIMIT:
                self._dropped = True  # more than a payload holds: the rest would be anyway
                break
            self._extras.append(name)
            self._extras_bytes += len(name) + 1
        if len(self._extras) > before or self._dropped:
            self._event.set()

    async def _loop(self) -> None:
        while True:
            await self._event.wait()
            self._event.clear()
            queues, self._pending = self._pending, set()
            extras, self._extras, self._extras_bytes = self._extras, [], 0
            dropped, self._dropped = self._dropped, False
            if not await self._anyone_else_listens():
                continue
            try:
                await self._db.execute(
                    "db_notify",
                    channel=self._channel,
                    message=payload(
                        queues, extras, self._origin, unnamed=self._unnamed, dropped=dropped
                    ),
                )
            except StoreError as exc:
                log.warning("notify_failed", error=str(exc))  # pollers will find the work

    async def _anyone_else_listens(self) -> bool:
        """Whether a listener of another process is connected, as last looked up."""
        now = asyncio.get_running_loop().time()
        if now >= self._others_known_until:
            own = self._own_listener.backend_pid if self._own_listener is not None else None
            try:
                found = await self._db.fetchval(
                    "db_listeners_elsewhere", application=self._application, own_pid=own
                )
                self._others_listen = bool(found)
            except StoreError as exc:  # not knowing, tell them
                log.warning("listeners_unknown", error=str(exc))
                self._others_listen = True
            self._others_known_until = now + self._recheck_seconds
        return self._others_listen


class InRecovery(Exception):
    """The server is a standby: it holds no notifications for us."""


# Failures a listener waits out: the server is down, unreachable, restarting or a standby.
_TRY_AGAIN_ON: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    asyncpg.PostgresError,
    TimeoutError,
    InRecovery,
)


class Listener(LoopService):
    """Calls `on_notify(queue)` for each queue named in a notification; None once it has
    connected, first or again (something may have been missed)."""

    def __init__(
        self,
        dsn: str,
        on_notify: Callable[[str | None], None],
        *,
        check_interval: float = 1.0,
        origin: str | None = None,
        channel: str = CHANNEL,
        application: str = LISTENER_APP,
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._application = application
        self._on_notify = on_notify
        self._own = None if origin is None else ORIGIN_MARK + origin
        self._check_interval = check_interval
        self.name = "listener"
        self.connected = asyncio.Event()
        self.backend_pid: int | None = None  # of the listening connection, while connected

    def _deliver(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        names = str(payload).split(",")
        if self._own is not None and names[-1] == self._own:
            return  # an echo of this process's own enqueue
        for name in names:
            if name and not name.startswith(ORIGIN_MARK):
                self._on_notify(name)

    async def _check_primary(self, conn: asyncpg.Connection) -> None:
        """Raise InRecovery when `conn` is on a standby: notifications are sent on the
        primary, and a standby never delivers them (after a failover, a connection to the
        old primary may be left on a server that now follows the new one)."""
        if await conn.fetchval(q("db_in_recovery").sql, timeout=10):
            raise InRecovery("the listening connection is on a server in recovery")

    async def _loop(self) -> None:
        delay = 0.1
        first = True
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(  # its own: a pooled one could not keep LISTEN
                    self._dsn, server_settings={"application_name": self._application}, timeout=10
                )
                await self._check_primary(conn)
                await conn.add_listener(self._channel, self._deliver)
                self.backend_pid = conn.get_server_pid()
                self.connected.set()
                if not first:
                    log.info("listener_reconnected")
                first = False
                self._on_notify(None)  # what was sent before it listened is gone
                delay = 0.1
                while not conn.is_closed():
                    await asyncio.sleep(self._check_interval)
                    # A cheap round trip notices a connection the server dropped, or a
                    # server that is a standby now.
                    await self._check_primary(conn)
            except _TRY_AGAIN_ON as exc:
                log.warning("listener_disconnected", error=repr(exc), retry_in=delay)
            finally:
                self.connected.clear()
                self.backend_pid = None
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
