"""Whether a JQS process may serve, and with what authentication, when it starts."""

from __future__ import annotations

import enum
import ipaddress

from jqs.errors import ConfigError


class AuthMode(enum.Enum):
    """How the API treats requests without a key."""

    REQUIRED = "required"  # every request needs a usable key
    OPEN_WHILE_NO_KEY = "open-while-no-key"  # loopback: anonymous until a key exists
    OFF = "off"  # JQS_AUTH=off: every request is anonymous


def is_loopback(host: str) -> bool:
    """Whether `host` is an address only this machine can reach."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: whatever it resolves to may change


def auth_mode(*, host: str, auth: str, have_keys: bool) -> AuthMode:
    """The mode for a process bound to `host`; ConfigError when it must not start.

    Without any key, a loopback address serves without authentication (as `make run`
    does); any other address refuses to start unless told JQS_AUTH=off, so that a server
    on a public address is never open by accident.
    """
    if auth == "off":
        return AuthMode.OFF
    loopback = is_loopback(host)
    if have_keys:
        return AuthMode.OPEN_WHILE_NO_KEY if loopback else AuthMode.REQUIRED
    if loopback:
        return AuthMode.OPEN_WHILE_NO_KEY
    raise ConfigError(
        f"refusing to serve on {host} without authentication: no API key exists. Set "
        "JQS_ADMIN_KEY (at least 32 characters), create a key with `jqs keys create`, or "
        "set JQS_AUTH=off to serve without keys"
    )
