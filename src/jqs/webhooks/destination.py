"""Whether a webhook URL may be used: http(s), and a host the SSRF policy allows (the
policy of the http task, JQS_HTTP_ALLOW). Checked when a URL is given, and again by the
guarded client at every attempt, since what a name resolves to can change."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from jqs.netguard import REFUSED_MESSAGE, DestinationPolicy, Resolver, system_resolver

MAX_URL_LENGTH = 2000
URL_PATTERN = r"^https?://[^\s]+$"


async def refusal(
    url: str, policy: DestinationPolicy, resolver: Resolver = system_resolver
) -> str | None:
    """Why `url` may not receive webhooks, or None when it may."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return f"not a usable URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not hold a user name or password"
    host = parts.hostname
    if policy.allows_host(host):
        return None
    try:
        addresses = await resolver(host, port)
    except (OSError, socket.gaierror, UnicodeError) as exc:
        return f"its host {host} does not resolve: {exc}"
    if not policy.allows(host, addresses):
        return REFUSED_MESSAGE
    return None
