"""Token identifiers (TIDs): minutes since the meter's base date, and their allocation.

A TID is 24 bits, so it counts at most 16 777 215 minutes (about 31.9 years) from a
base date of 1 January 1993, 2014 or 2035 at 00:00. A meter remembers recent TIDs and
refuses a token whose TID it has already used or that is older than everything it
remembers, so per meter every TID-bearing token must have a fresh, increasing TID.

citygas runs the TID clock on UTC: the base date is midnight UTC, and aware datetimes are
converted to UTC first. Any clock works as long as it never runs backwards for a meter;
:func:`next_tid` makes sure of that even when two tokens are vended in the same minute.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from citygas.sts.errors import KeyExpiredError, TidExhaustedError

__all__ = [
    "BASE_DATES",
    "KEN_TID_SPAN",
    "MAX_TID",
    "InMemoryTidStore",
    "TidStore",
    "base_datetime",
    "check_key_not_expired",
    "issue_time",
    "key_expiry_tid",
    "minutes_since_base_date",
    "next_base_date",
    "next_tid",
]

MAX_TID: Final = (1 << 24) - 1
BASE_DATES: Final = (1993, 2014, 2035)
# README of the conformance suite: the key expires when TID > KEN x 65535.
KEN_TID_SPAN: Final = 65_535


def base_datetime(base_date: int) -> datetime:
    """Midnight UTC on 1 January of ``base_date`` (1993, 2014 or 2035)."""
    if base_date not in BASE_DATES:
        raise ValueError(f"base date {base_date} is not one of {BASE_DATES}")
    return datetime(base_date, 1, 1, tzinfo=UTC)


def next_base_date(base_date: int) -> int:
    """The base date a rollover moves to: 1993 -> 2014 -> 2035."""
    index = BASE_DATES.index(base_date)
    if index + 1 >= len(BASE_DATES):
        raise ValueError(f"there is no base date after {base_date}")
    return BASE_DATES[index + 1]


def minutes_since_base_date(moment: datetime, base_date: int) -> int:
    """Whole minutes from the base date to ``moment`` (seconds are dropped, not rounded).

    ``moment`` must be timezone-aware: a naive time would make the TID depend on the
    server's local zone.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("moment must be timezone-aware (citygas runs the TID clock on UTC)")
    minutes = (moment - base_datetime(base_date)) // timedelta(minutes=1)
    if not 0 <= minutes <= MAX_TID:
        raise TidExhaustedError(
            f"{moment.isoformat()} is {minutes} minutes from base date {base_date}, outside 0..{MAX_TID}"
        )
    return minutes


def issue_time(tid: int, base_date: int) -> datetime:
    """The UTC minute a TID stands for."""
    if not 0 <= tid <= MAX_TID:
        raise ValueError(f"TID {tid} is outside 0..{MAX_TID}")
    return base_datetime(base_date) + timedelta(minutes=tid)


def next_tid(now_minutes: int, last_issued: int | None) -> int:
    """The TID for the next token to a meter: ``max(now, last issued + 1)``.

    Two tokens vended in the same minute (or after a clock step back) still get distinct,
    increasing TIDs, which the meter's TID memory requires.
    """
    candidate = now_minutes if last_issued is None else max(now_minutes, last_issued + 1)
    if candidate > MAX_TID:
        raise TidExhaustedError(
            f"TID {candidate} does not fit in 24 bits; roll the meter over to its next base date"
        )
    if candidate < 0:
        raise ValueError(f"TID {candidate} is negative")
    return candidate


def key_expiry_tid(ken: int) -> int:
    """The last TID a key with key expiry number ``ken`` accepts."""
    if not 0 <= ken <= 255:
        raise ValueError(f"KEN {ken} is outside 0..255")
    return ken * KEN_TID_SPAN


def check_key_not_expired(tid: int, ken: int) -> None:
    """Refuse to issue under an expired key: a meter rejects TID > KEN x 65535."""
    if tid > key_expiry_tid(ken):
        raise KeyExpiredError(
            f"TID {tid} is past the key's expiry (KEN {ken} allows TIDs up to {key_expiry_tid(ken)}); "
            "send the meter a key change first"
        )


class TidStore(Protocol):
    """Per-meter TID allocation that the meters/database layer implements.

    ``allocate_tid`` must be atomic per meter: read the last issued TID, compute
    :func:`next_tid`, store it, and return it, in one step (a conditional UPDATE or a row
    lock inside the vend's transaction), so that two concurrent vends to the same meter
    never get the same TID.
    """

    def allocate_tid(self, meter_pan: str, now_minutes: int) -> int:
        """Reserve and return the next TID for ``meter_pan``."""
        ...

    def reset_for_rollover(self, meter_pan: str) -> None:
        """Forget the meter's last TID: after a rollover TIDs count from the new base date."""
        ...


class InMemoryTidStore:
    """A thread-safe :class:`TidStore` for tests, the simulator and single-process tools."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, int] = {}

    def allocate_tid(self, meter_pan: str, now_minutes: int) -> int:
        with self._lock:
            tid = next_tid(now_minutes, self._last.get(meter_pan))
            self._last[meter_pan] = tid
            return tid

    def reset_for_rollover(self, meter_pan: str) -> None:
        with self._lock:
            self._last.pop(meter_pan, None)

    def last_issued(self, meter_pan: str) -> int | None:
        """The last TID handed out for ``meter_pan``, if any."""
        with self._lock:
            return self._last.get(meter_pan)
