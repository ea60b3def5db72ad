from __future__ import annotations

import os
import resource

from jqs.http.fds import RESERVED, connection_cap, raise_soft_limit


def test_the_cap_leaves_descriptors_spare() -> None:
    assert connection_cap(10_000, 1_048_576) == 10_000
    assert connection_cap(10_000, 20_000) == 10_000
    assert connection_cap(10_000, 8_192) == 8_192 - RESERVED
    assert connection_cap(10_000, 1_024) == 512  # a small limit keeps half spare
    assert connection_cap(10_000, 1) == 1
    assert connection_cap(50, resource.RLIM_INFINITY) == 50


def test_raising_the_soft_limit_reaches_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Low, yet above what this process has open, so that nothing else runs out meanwhile.
    lowered = max(256, len(os.listdir("/proc/self/fd")) + 64)
    if hard != resource.RLIM_INFINITY:
        lowered = min(lowered, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        limits = raise_soft_limit()
        assert limits.soft_before == lowered
        assert limits.hard == hard
        assert limits.soft == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if hard != resource.RLIM_INFINITY:
            assert limits.soft == hard
        else:
            assert limits.soft > lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
