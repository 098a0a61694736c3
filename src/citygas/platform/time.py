"""Time: aware UTC in storage and logic, Asia/Kolkata for display.

A clock is injectable so tests and simulations can move time without sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

INDIA = ZoneInfo("Asia/Kolkata")

_frozen: datetime | None = None


def utcnow() -> datetime:
    return _frozen if _frozen is not None else datetime.now(UTC)


def freeze(at: datetime | None) -> None:
    """Fix the clock (tests, simulations); `None` returns to real time."""
    global _frozen  # noqa: PLW0603 - the process clock is deliberately global
    if at is not None and at.tzinfo is None:
        raise ValueError("the clock takes aware datetimes only")
    _frozen = at


def ensure_aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: citygas stores aware UTC times only")
    return value.astimezone(UTC)


def to_india(value: datetime) -> datetime:
    return ensure_aware(value).astimezone(INDIA)


def format_india(value: datetime | None) -> str:
    if value is None:
        return "—"
    return to_india(value).strftime("%d %b %Y, %H:%M IST")
