"""The dispatcher: every process sends the deliveries that are due, whoever wrote them.

Each round claims due deliveries with FOR UPDATE SKIP LOCKED under a lease longer than one
attempt may take, so a delivery has one sender at a time across processes and hosts, and a
delivery whose sender died is taken over once its lease runs out. Attempts go through the
SSRF guard; their outcomes are written in batches, each fenced by its claim's token.

A round starts when this process wrote events (`wake`, from the store's `on_events`), and
every `poll_interval` for deliveries written elsewhere or due for a retry. While no
subscription and no callback exists, `wake` costs nothing: that is checked every poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Protocol

from jqs.clock import Clock, SystemClock
from jqs.errors import StoreError
from jqs.logging import get_logger
from jqs.models import DeliveryState, DueDelivery, message_id
from jqs.netguard import DestinationPolicy, DestinationRefused, Resolver
from jqs.netguard import system_resolver as default_resolver
from jqs.port import DeliveryClaim, DeliveryOutcome
from jqs.service import LoopService
from jqs.webhooks import signing
from jqs.webhooks.body import body_of
from jqs.webhooks.schedule import DEFAULT_SCHEDULE, RetrySchedule, parse_retry_after
from jqs.webhooks.sender import Sender, SendError

log = get_logger(__name__)
# How often a process that saw deliveries could arise checks whether they still can.
ARMED_RECHECK = 30.0


class Outbox(Protocol):
    """The part of the store the dispatcher uses."""

    async def webhooks_armed(self) -> bool: ...
    async def deliveries_claim(self, params: DeliveryClaim) -> list[DueDelivery]: ...
    async def deliveries_record(self, outcomes: list[DeliveryOutcome]) -> int: ...


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    """How deliveries are made. `concurrency`: attempts in flight in this process."""

    schedule: RetrySchedule = field(default_factory=lambda: RetrySchedule.parse(DEFAULT_SCHEDULE))
    timeout: float = 15.0
    concurrency: int = 100
    batch: int = 100
    poll_interval: float = 1.0

    @property
    def lease_seconds(self) -> float:
        """How long a claim holds a delivery: longer than an attempt may last (the attempt
        is cut at `timeout`), so that no other process sends it meanwhile."""
        return 2 * self.timeout + 5.0


class Dispatcher(LoopService):
    """Sends due webhook deliveries; one per process, started and stopped as a service."""

    name = "webhooks"

    def __init__(
        self,
        store: Outbox,
        policy: DestinationPolicy,
        settings: DispatchSettings | None = None,
        *,
        clock: Clock | None = None,
        resolver: Resolver = default_resolver,
    ) -> None:
        self._store = store
        self._policy = policy
        self._settings = settings or DispatchSettings()
        self._clock = clock or SystemClock()
        self._resolver = resolver
        self._woken = asyncio.Event()
        self._armed = False
        self._armed_until = 0.0
        self._inflight: set[asyncio.Task[None]] = set()
        self._outcomes: list[DeliveryOutcome] = []
        self._recorded = asyncio.Event()
        self._to_record = asyncio.Event()
        self._recorder: asyncio.Task[None] | None = None
        self._sender: Sender | None = None

    def wake(self) -> None:
        """Events were written here: deliveries may be due now (quick; never raises)."""
        if self._armed:
            self._woken.set()

    def arm(self) -> None:
        """A subscription or a callback was just made here: listen to `wake` at once."""
        self._armed = True
        self._woken.set()

    async def start(self) -> None:
        """Begin sending. Idempotent."""
        if self._task is None:
            self._sender = Sender(self._policy, resolver=self._resolver)
            self._recorder = asyncio.create_task(self._record_loop(), name="jqs-webhooks-record")
        await super().start()

    async def stop(self) -> None:
        """Stop claiming; attempts under way get a moment to end, then their outcomes are
        written. A delivery cut short is sent again once its lease runs out."""
        await super().stop()
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=2.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
        with contextlib.suppress(StoreError):
            await self._flush()
        sender, self._sender = self._sender, None
        if sender is not None:
            await sender.aclose()

    async def _loop(self) -> None:
        settings = self._settings
        while True:
            self._woken.clear()
            full = False
            try:
                now = self._clock.monotonic()
                if not self._armed or now >= self._armed_until:
                    self._armed = await self._store.webhooks_armed()
                    self._armed_until = now + ARMED_RECHECK
                full = await self._round()
            except StoreError as exc:
                log.warning("webhook_claim_failed", error=str(exc))
            if not full:
                await self._clock.wait(self._woken, settings.poll_interval)

    async def _round(self) -> bool:
        """Claim what is due and start sending it; True when more may be due at once."""
        settings = self._settings
        room = min(settings.concurrency - len(self._inflight), settings.batch)
        if room <= 0:
            return False  # an attempt's end wakes the loop
        due = await self._store.deliveries_claim(
            DeliveryClaim(limit=room, lease_seconds=settings.lease_seconds)
        )
        for delivery in due:
            task = asyncio.create_task(self._attempt(delivery))
            self._inflight.add(task)
            task.add_done_callback(self._ended)
        return len(due) == room

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        # Room for more: claimed in batches, not one statement per attempt that ends.
        if len(self._inflight) <= self._settings.concurrency // 2:
            self._woken.set()

    async def _attempt(self, delivery: DueDelivery) -> None:
        outcome = await self._send(delivery)
        self._outcomes.append(outcome)
        self._to_record.set()

    async def _send(self, delivery: DueDelivery) -> DeliveryOutcome:
        """Make one attempt and say how it went."""
        if delivery.disabled or delivery.url is None:
            return DeliveryOutcome(
                delivery.id, delivery.token, DeliveryState.DROPPED, error="subscription disabled"
            )
        body = delivery.body if delivery.body is not None else body_of(delivery)
        attempts = delivery.attempts + 1
        if not delivery.secrets:
            return self._failure(
                delivery, body, attempts, error="the submitting API key has no webhook secret"
            )
        clock = self._clock
        data = body.encode()
        headers = signing.headers(
            delivery.secrets, message_id(delivery.id), int(clock.now().timestamp()), data
        )
        started = clock.monotonic()
        assert self._sender is not None
        try:
            async with clock.timeout(self._settings.timeout):
                answer = await self._sender.post(delivery.url, data, headers)
            status = answer.status
            retry_after = parse_retry_after(answer.retry_after)
        except DestinationRefused as exc:
            return self._failure(delivery, body, attempts, error=str(exc), started=started)
        except (SendError, TimeoutError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if isinstance(exc, TimeoutError):
                error = f"no answer within {self._settings.timeout:g} s"
            return self._failure(delivery, body, attempts, error=error, started=started)
        elapsed = (clock.monotonic() - started) * 1000
        if 200 <= status < 300:
            return DeliveryOutcome(
                delivery.id,
                delivery.token,
                DeliveryState.DELIVERED,
                status_code=status,
                duration_ms=elapsed,
                body=body,
            )
        if status == 410:
            return DeliveryOutcome(
                delivery.id,
                delivery.token,
                DeliveryState.FAILED,
                status_code=status,
                error="410 Gone: the subscription is disabled",
                duration_ms=elapsed,
                body=body,
                gone=delivery.subscription,
            )
        return self._failure(
            delivery,
            body,
            attempts,
            status_code=status,
            error=f"HTTP {status}",
            started=started,
            retry_after=retry_after,
        )

    def _failure(
        self,
        delivery: DueDelivery,
        body: str,
        attempts: int,
        *,
        error: str,
        status_code: int | None = None,
        started: float | None = None,
        retry_after: float | None = None,
    ) -> DeliveryOutcome:
        """A failed attempt: due again as the schedule (or Retry-After) says, or given up."""
        retry_in = self._settings.schedule.retry_in(attempts, retry_after)
        elapsed = None if started is None else (self._clock.monotonic() - started) * 1000
        return DeliveryOutcome(
            delivery.id,
            delivery.token,
            DeliveryState.FAILED if retry_in is None else DeliveryState.PENDING,
            retry_in=retry_in or 0.0,
            status_code=status_code,
            error=error,
            duration_ms=elapsed,
            body=body,
        )

    async def _record_loop(self) -> None:
        while True:
            await self._to_record.wait()
            self._to_record.clear()
            try:
                await self._flush()
            except StoreError as exc:
                # Kept for the next round; should this process end first, the leases run
                # out and the deliveries are made again.
                log.warning("webhook_record_failed", error=str(exc))
                await self._clock.sleep(1.0)
                self._to_record.set()

    async def _flush(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return
        try:
            await self._store.deliveries_record(outcomes)
        except BaseException:
            self._outcomes = outcomes + self._outcomes
            raise
        for outcome in outcomes:
            if outcome.state is DeliveryState.DELIVERED:
                log.info("webhook_delivered", delivery=outcome.id, status_code=outcome.status_code)
            elif outcome.state is not DeliveryState.PENDING:
                log.info(
                    "webhook_given_up",
                    delivery=outcome.id,
                    status_code=outcome.status_code,
                    error=outcome.error,
                )
