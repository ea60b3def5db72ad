"""What a queue name and a cron expression may look like."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from croniter import croniter

QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
QUEUE_NAME_RULE = (
    "a queue name is 1-100 characters, letters, digits and _ . : - (starting with a letter "
    "or digit)"
)


def error_message(error: Mapping[str, Any]) -> str:
    """A pydantic error's message, saying what a queue name may be rather than its regex."""
    context = error.get("ctx") or {}
    if error.get("type") == "string_pattern_mismatch" and context.get("pattern") == (
        QUEUE_NAME.pattern
    ):
        return QUEUE_NAME_RULE
    return str(error["msg"])


def check_queue_name(name: str) -> str:
    """The name, or ValueError saying what a queue name may contain."""
    if not QUEUE_NAME.match(name):
        raise ValueError(
            f"invalid queue name {name!r}: {QUEUE_NAME_RULE.removeprefix('a queue name is ')}"
        )
    return name


def check_cron(expression: str) -> str:
    """The expression, or ValueError: five cron fields, or six with seconds last."""
    fields = expression.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(expression):
        raise ValueError(
            f"invalid cron expression {expression!r}: five fields (minute hour day month "
            "weekday), or six with seconds last"
        )
    return expression
