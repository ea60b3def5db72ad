"""How late the machine wakes a process that does nothing but sleep: the floor under p99.

Run beside a latency measurement, it shows which part of a tail is the machine's. On the
2-core VMs the bench runs on, such a process was woken 3-8 ms late about every 1.5 s while
either JQS or the raw baseline ran at 200 jobs/s, and at the same moments as their slowest
jobs; with the machine idle it was not.

    python -m bench.stalls OUT   (until SIGTERM; writes one lateness in ms per line to OUT)
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

TICK = 0.001  # seconds asked for each sleep
RECORD_FROM_MS = 1.0  # lateness below this is not written down


def main(out: Path) -> None:
    late: list[float] = []
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    ticks = 0
    while not stop:
        began = time.perf_counter()
        time.sleep(TICK)
        ticks += 1
        lateness = (time.perf_counter() - began - TICK) * 1000
        if lateness >= RECORD_FROM_MS:
            late.append(lateness)
    out.write_text(f"{ticks}\n" + "".join(f"{v:.3f}\n" for v in late))


def read(path: Path) -> tuple[int, list[float]]:
    """(sleeps made, lateness in ms of those at least RECORD_FROM_MS late)."""
    lines = path.read_text().split()
    return int(lines[0]), [float(v) for v in lines[1:]]


if __name__ == "__main__":
    main(Path(sys.argv[1]))
