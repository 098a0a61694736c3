"""Pure metering arithmetic: which tokens a signed event proves accepted, which vend tokens are still pending
and in what order, consumption from snapshots, and the balance estimate. No database, no web.

Units: litres and paise, integers. Converting gas to money rounds half up to the paisa:
``paise = (litres x paise_per_scm + 500) // 1000``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Final

__all__ = [
    "CONFIRMING_REFUSALS",
    "DAILY_AVERAGE_DAYS",
    "LOW_CREDIT_DAYS",
    "ConsumptionPoint",
    "IssuedToken",
    "PendingToken",
    "SnapshotValue",
    "VendTokens",
    "average_daily_litres",
    "confirmed_tid",
    "consumption_points",
    "days_left",
    "estimate_paise",
    "litres_to_paise",
    "pending_in_order",
    "period_closes_at",
    "rate_in_force",
]

# How many days of daily snapshots the spending average looks back over: two weeks, so that weekends
# (households cook more on Sundays) weigh as they do in a real fortnight.
DAILY_AVERAGE_DAYS: Final = 14
# Fewer days of credit left than this is "low" in the app, whatever the meter's own threshold says.
LOW_CREDIT_DAYS: Final = 3
# A refusal that proves the meter had accepted the token before: it remembers the TID.
CONFIRMING_REFUSALS: Final = frozenset({"used_error"})
_TID: Final = re.compile(r"(?:^|\s)tid=(\d{1,10})(?:\s|$)")
_IST: Final = timezone(timedelta(hours=5, minutes=30))
_SECONDS_PER_DAY: Final = 86_400


def litres_to_paise(litres: int, paise_per_scm: int) -> int:
    """Gas at a price per SCM, rounded half up to the paisa."""
    return (litres * paise_per_scm + 500) // 1000


def confirmed_tid(code: str, detail: str) -> int | None:
    """The TID a meter event proves the meter has accepted, or None.

    A ``token_accepted`` event names the accepted token's TID (``credit_added +25000 tid=12345678``); a
    ``token_rejected`` event whose outcome is ``used_error`` names the TID the meter already holds."""
    match = _TID.search(detail)
    if match is None:
        return None
    if code == "token_accepted":
        return int(match.group(1))
    if code == "token_rejected" and detail.split(" ", 1)[0] in CONFIRMING_REFUSALS:
        return int(match.group(1))
    return None


# --- pending tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    kind: str  # key_change | set_tariff_rate | credit
    token: str
    tid: int | None  # key change tokens carry none


@dataclass(frozen=True)
class VendTokens:
    """A vend as the pending rule needs it: its tokens in the order they must be entered."""

    vend_id: uuid.UUID
    receipt_number: str
    issued_at: datetime
    gas_credit_paise: int
    tokens: tuple[IssuedToken, ...]


@dataclass(frozen=True)
class PendingToken:
    vend_id: uuid.UUID
    receipt_number: str
    kind: str
    token: str
    tid: int | None
    issued_at: datetime
    gas_credit_paise: int  # the credit this token adds: the vend's gas credit on its credit token, else 0
    position: int = 0  # the token's place in its vend (0 = first to enter)


def pending_in_order(vends: Sequence[VendTokens], confirmed: frozenset[int] | set[int]) -> list[PendingToken]:
    """The tokens the meter has not yet been proved to accept, in the order they must be entered: oldest
    vend first, and within a vend in its own order (key change tokens, then tariff, then credit).

    A TID-bearing token is settled when its TID is confirmed. A key change token carries no TID; it is
    settled when any TID-bearing token of its vend or of a later vend is confirmed, because those were made
    under the new key and the meter could not have accepted them without changing keys first."""
    ordered = sorted(vends, key=lambda v: (v.issued_at, v.receipt_number))
    # For each vend: is some TID token of this vend or a later one confirmed?
    later_confirmed = [False] * len(ordered)
    seen = False
    for index in range(len(ordered) - 1, -1, -1):
        seen = seen or any(t.tid is not None and t.tid in confirmed for t in ordered[index].tokens)
        later_confirmed[index] = seen
    pending: list[PendingToken] = []
    for index, vend in enumerate(ordered):
        for position, token in enumerate(vend.tokens):
            settled = later_confirmed[index] if token.tid is None else token.tid in confirmed
            if settled:
                continue
            pending.append(
                PendingToken(
                    vend_id=vend.vend_id,
                    receipt_number=vend.receipt_number,
                    kind=token.kind,
                    token=token.token,
                    tid=token.tid,
                    issued_at=vend.issued_at,
                    gas_credit_paise=vend.gas_credit_paise if token.kind == "credit" else 0,
                    position=position,
                )
            )
    return pending


# --- consumption -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotValue:
    period_end: date
    cumulative_litres: int


@dataclass(frozen=True)
class ConsumptionPoint:
    period_end: date
    litres: int
    paise: int


def _previous_period_end(period_end: date, kind: str) -> date:
    if kind == "daily":
        return period_end - timedelta(days=1)
    if kind == "monthly":
        return period_end.replace(day=1) - timedelta(days=1)
    raise ValueError(f"snapshot kind {kind!r} is neither daily nor monthly")


def period_closes_at(period_end: date) -> datetime:
    """The last second of a period: 23:59:59 IST on its last day, in UTC."""
    return datetime.combine(period_end, time(23, 59, 59), tzinfo=_IST).astimezone(UTC)


def rate_in_force(versions: Sequence[tuple[datetime, int]], at: datetime, *, fallback: int = 0) -> int:
    """The price per SCM in force at `at` from (effective_from, rate) versions. Before the first version the
    first version's rate is used (gas used before the first published price is valued at that price); with
    no versions at all, `fallback`."""
    if not versions:
        return fallback
    ordered = sorted(versions)
    rate = ordered[0][1]
    for effective_from, version_rate in ordered:
        if effective_from > at:
            break
        rate = version_rate
    return rate


def consumption_points(
    snapshots: Sequence[SnapshotValue],
    *,
    kind: str,
    periods: int,
    rates: Sequence[tuple[datetime, int]],
    fallback_rate: int = 0,
) -> list[ConsumptionPoint]:
    """Gas used in each period, from consecutive snapshots: a point for period P needs the snapshot of P
    and of the period just before it; a gap (a period the meter did not record) gives no point, rather than
    a guess. Valued at the rate in force when the period closed. The last `periods` points, oldest first."""
    if periods <= 0:
        return []
    by_end = {s.period_end: s.cumulative_litres for s in snapshots}
    points: list[ConsumptionPoint] = []
    for period_end in sorted(by_end):
        before = by_end.get(_previous_period_end(period_end, kind))
        if before is None:
            continue
        litres = by_end[period_end] - before
        if litres < 0:  # a cumulative register never runs back; such a pair is not one meter's history
            continue
        rate = rate_in_force(rates, period_closes_at(period_end), fallback=fallback_rate)
        points.append(ConsumptionPoint(period_end, litres, litres_to_paise(litres, rate)))
    return points[-periods:]


def average_daily_litres(daily: Sequence[SnapshotValue], *, days: int = DAILY_AVERAGE_DAYS) -> int | None:
    """Litres a day over the last `days` days of daily snapshots (first to last snapshot in that window,
    divided by the days between them, rounded half up); None with fewer than two snapshots."""
    if len(daily) < 2:
        return None
    ordered = sorted(daily, key=lambda s: s.period_end)
    last = ordered[-1]
    window = [s for s in ordered if s.period_end >= last.period_end - timedelta(days=days)]
    first = window[0]
    span = (last.period_end - first.period_end).days
    if span <= 0:
        return None
    used = max(0, last.cumulative_litres - first.cumulative_litres)
    return (2 * used + span) // (2 * span)


def estimate_paise(*, synced_paise: int, synced_at: datetime, now: datetime, daily_spend_paise: int) -> int:
    """The credit left now: the synced credit less the average spend for the time since (pro rata by the
    second, rounded down), never below zero. A sync in the future of `now` (a fast meter clock) spends
    nothing."""
    elapsed = max(0, int((now - synced_at).total_seconds()))
    spent = daily_spend_paise * elapsed // _SECONDS_PER_DAY
    return max(0, synced_paise - spent)


def days_left(estimated_paise: int, daily_spend_paise: int | None) -> int | None:
    """Whole days the estimated credit lasts at the average spend; None when there is no spend to go by."""
    if daily_spend_paise is None or daily_spend_paise <= 0:
        return None
    return estimated_paise // daily_spend_paise
