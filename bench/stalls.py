"""How late the machine wakes a process that does nothing but sleep: the floor under p99.

Run beside a latency measurement, it shows which part of a tail is the machine's. On the
2-core VMs the bench runs on, such a process was woken 3-8 ms late about every 1.5 s while
either JQS or the raw baseline ran at 200 jobs/s, and at the same moments as their slowest
jobs; with the machine idle it was not.

    python -m bench.stalls OUT   (until SIGTERM; writes `time lateness_ms` lines to OUT)
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

TICK = 0.001  # seconds asked for each sleep
RECORD_FROM_MS = 1.0  # lateness below this is not written down


def main(out: Path) -> None:
    late: list[tuple[float, float]] = []
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    while not stop:
        began = time.perf_counter()
        time.sleep(TICK)
        lateness = (time.perf_counter() - began - TICK) * 1000
        if lateness >= RECORD_FROM_MS:
            late.append((time.time(), lateness))
    out.write_text("".join(f"{at:.4f} {ms:.3f}\n" for at, ms in late))


def read(path: Path, begin: float, end: float) -> list[float]:
    """Lateness in ms of the wake-ups at least RECORD_FROM_MS late between two time.time()s."""
    pairs = (line.split() for line in path.read_text().splitlines() if line.strip())
    return [float(ms) for at, ms in pairs if begin <= float(at) <= end]


if __name__ == "__main__":
    main(Path(sys.argv[1]))
