"""How a JQS process stops: the first SIGTERM/SIGINT starts a graceful stop, a second one
exits at once (leases bring the unfinished jobs back to the queue)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from jqs.logging import flush_job_events, get_logger

log = get_logger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """`requested` is set by the first stop signal; the second ends the process."""

    def __init__(self, *, shutdown_timeout: float) -> None:
        self.requested = asyncio.Event()
        self._shutdown_timeout = shutdown_timeout
        self._count = 0

    @contextmanager
    def handled(self) -> Iterator[None]:
        """Handle the stop signals on the running loop while inside."""
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    def _on_signal(self, signum: int) -> None:
        self._count += 1
        name = signal.Signals(signum).name
        if self._count == 1:
            log.info("shutdown_requested", signal=name, timeout=self._shutdown_timeout)
            self.requested.set()
            return
        # Second signal: the operator wants out now. Leases bring unfinished jobs back.
        log.warning("shutdown_forced", signal=name)
        flush_job_events()  # os._exit skips atexit
        sys.stdout.flush()
        os._exit(1)
