"""Outbound HTTP that cannot be pointed at internal services (SSRF protection).

`guarded_client(settings.destination_policy, timeout=...)` is the one way JQS makes
requests to addresses that a job or a user chose.
"""

from jqs.netguard.client import (
    DestinationRefused,
    GuardedBackend,
    Resolver,
    guarded_client,
    system_resolver,
)
from jqs.netguard.policy import REFUSED_MESSAGE, DestinationPolicy, is_public

__all__ = [
    "REFUSED_MESSAGE",
    "DestinationPolicy",
    "DestinationRefused",
    "GuardedBackend",
    "Resolver",
    "guarded_client",
    "is_public",
    "system_resolver",
]
