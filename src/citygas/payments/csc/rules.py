"""Pure rules of the CSC channel: commission terms from what a person typed, the float top-up process,
the daily statement's arithmetic, and the form's client reference. No database, no web.

Units that cannot be confused: a percentage enters only as the text a person typed, parsed to a
`Decimal` and checked 0 < p ≤ 100 by `percent_to_bp`, then stored as basis points. Typing 10 means
10 % (1000 bp); typing 1000 is refused, never read as 1000 %. Amounts are whole paise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from citygas.platform.money import AmountError, format_inr, parse_rupees
from citygas.platform.workflow_rules import StateSpec, t, workflow
from citygas.tariffs.rules import (
    CommissionRule,
    TariffRuleError,
    bp_to_percent,
    commission_for,
    flat_commission,
    percent_commission,
)

FLOAT_APPROVE = "float.approve"  # the permission of citygas.identity.rules.Permission.FLOAT_APPROVE

# requested → approved (the money is in the bank; the float grows) or rejected (with a reason).
FLOAT_TOPUP = workflow(
    "csc_float_topup",
    initial="requested",
    states=[
        StateSpec("requested", "Waiting for approval", queue_role="back_office", sla=timedelta(hours=24)),
        StateSpec("approved", "Approved", final=True),
        StateSpec("rejected", "Rejected", final=True),
    ],
    transitions=[
        t("approve", "requested", "approved", permission=FLOAT_APPROVE, label="approve the top-up"),
        t(
            "reject",
            "requested",
            "rejected",
            permission=FLOAT_APPROVE,
            requires_reason=True,
            label="reject the top-up",
        ),
    ],
)


class CommissionKind(StrEnum):
    PERCENT = "percent"
    FLAT = "flat"


class CommissionInputError(ValueError):
    """Commission terms typed in a form that cannot be accepted; the message says what to type."""


def commission_from_form(
    kind: str, *, percent: str = "", flat_rupees: str = "", cap_rupees: str = ""
) -> CommissionRule:
    """Commission terms from the back office form: a percentage ('10' is 10 %, '0.5' is 0.5 %) with an
    optional cap in rupees, or a flat amount in rupees per vend."""
    cap = _optional_paise(cap_rupees, "the cap")
    try:
        if kind == CommissionKind.PERCENT:
            text = percent.replace("%", "").strip()
            try:
                value = Decimal(text)
            except InvalidOperation as exc:
                raise CommissionInputError(f"'{percent}' is not a percentage; 10 % is written 10") from exc
            return percent_commission(value, cap_paise=cap)
        if kind == CommissionKind.FLAT:
            flat = _optional_paise(flat_rupees, "the flat commission")
            if flat is None:
                raise CommissionInputError("a flat commission needs an amount in rupees")
            return flat_commission(flat, cap_paise=cap)
    except TariffRuleError as exc:
        raise CommissionInputError(str(exc)) from exc
    raise CommissionInputError("a commission is a percentage or a flat amount")


def _optional_paise(text: str, what: str) -> int | None:
    if not text.strip():
        return None
    try:
        paise = parse_rupees(text)
    except AmountError as exc:
        raise CommissionInputError(f"{what}: {exc}") from exc
    if paise <= 0:
        raise CommissionInputError(f"{what} must be more than ₹0")
    return int(paise)


def describe_commission(rule: CommissionRule) -> str:
    """'1.5 % of each vend, at most ₹20.00' or '₹5.00 a vend'."""
    cap = f", at most {format_inr(rule.cap_paise)}" if rule.cap_paise is not None else ""
    if rule.percent_bp is not None:
        return f"{bp_to_percent(rule.percent_bp)} % of each vend{cap}"
    return f"{format_inr(rule.flat_paise or 0)} a vend{cap}"


def commission_on(rule: CommissionRule, amount_paise: int) -> int:
    return commission_for(rule, amount_paise)


CLIENT_REF = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def check_client_ref(client_ref: str) -> str:
    """The reference the vend form carries from the moment it was shown: the same reference twice (a
    double click, a resubmitted form) is the same vend."""
    ref = client_ref.strip()
    if not CLIENT_REF.match(ref):
        raise ValueError("the vend form has no valid reference; reload the page and try again")
    return ref


@dataclass(frozen=True, slots=True)
class StatementTotals:
    """One agent's day: every figure from the ledger, in paise. The float is a liability of the CGD (the
    agent's prepaid money): top-ups raise it, vends lower it."""

    opening_float_paise: int
    topups_paise: int
    topup_count: int
    vends_paise: int
    vend_count: int
    adjustments_paise: int  # reversals and corrections, signed (+ raises the float)
    commission_paise: int

    @property
    def closing_float_paise(self) -> int:
        return self.opening_float_paise + self.topups_paise - self.vends_paise + self.adjustments_paise


def statement_csv_rows(totals: StatementTotals) -> list[tuple[str, int]]:
    return [
        ("opening_float_paise", totals.opening_float_paise),
        ("topups_paise", totals.topups_paise),
        ("topup_count", totals.topup_count),
        ("vends_paise", totals.vends_paise),
        ("vend_count", totals.vend_count),
        ("adjustments_paise", totals.adjustments_paise),
        ("commission_paise", totals.commission_paise),
        ("closing_float_paise", totals.closing_float_paise),
    ]


MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """A calendar month of India business dates, the period commission is paid for ("2026-11")."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        match = MONTH.match(text.strip())
        if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
            raise ValueError(f"a month is written YYYY-MM, e.g. 2026-11, not '{text.strip()[:20]}'")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, day: date) -> Period:
        return cls(day.year, day.month)

    @property
    def first(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last(self) -> date:
        return self.next().first - timedelta(days=1)

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), 12 if self.month == 1 else self.month - 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def label(self) -> str:
        return self.first.strftime("%B %Y")


@dataclass(frozen=True, slots=True)
class CommissionSummary:
    """One agent's commission, from `commission_payable(agent)` in the ledger, in paise. "Earned" is every
    movement that is not a payout (commission on vends, less reversals), by business date."""

    earned_in_period_paise: int
    earned_through_end_paise: int  # from the first vend up to the period's last day
    paid_paise: int  # every payout so far, whatever month it paid for
    payable_paise: int  # the account's balance today

    @property
    def unpaid_through_end_paise(self) -> int:
        """What a payout for the period may pay: earned up to its end and not paid yet — never more than
        the account holds (a later reversal may have lowered it)."""
        return max(0, min(self.earned_through_end_paise - self.paid_paise, self.payable_paise))
