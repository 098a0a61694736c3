"""Pure tariff arithmetic: percentages in basis points, the VAT split of a top-up, litres for money,
instalments, commission, the rate in force at a moment, and the top-up waterfall.

No database here (an import contract checks it). Everything is integer paise, integer litres and integer
basis points (1 % = 100 bp). A percentage enters only through `percent_to_bp`, from a `Decimal` a person
typed, checked to be 0 < p ≤ 100: a stored 1000 always means 10 %, and typing 10 for 10 % can never
become 1000 %.

Rounding, always in the customer's favour and never losing a paisa:
- VAT split of a gross amount: the gas value is rounded up, VAT is the rest (`split_inclusive`).
- Tax added on a net amount (GST on a service): rounded down (`tax_on`).
- Litres for money: rounded up (`litres_for_paise`); money for litres: rounded down (`paise_for_litres`).
- Percentage instalments: rounded down. Commission: rounded down (the CGD pays the agent whole paise).
Split parts always sum exactly to the whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final, TypeVar

BP_PER_PERCENT: Final = 100
FULL_BP: Final = 10_000  # 100 %
LITRES_PER_SCM: Final = 1000

T = TypeVar("T")


class TariffRuleError(ValueError):
    """A rate, percentage or amount that the tariff rules do not accept."""


class AmountOutOfRange(TariffRuleError):
    """A top-up below the minimum or above the maximum."""


class TaxKind(StrEnum):
    VAT = "vat"  # state VAT on natural gas (gas is outside GST), one rate per state
    GST = "gst"  # GST on services: connection, fixed charges


GST_REGION: Final = "IN"  # GST is national; VAT rules name the state


class ChargeKind(StrEnum):
    CONNECTION = "connection"
    SECURITY_DEPOSIT = "security_deposit"
    FIXED_MONTHLY = "fixed_monthly"


# An interest-free refundable deposit is not the price of a service, so no GST on it.
GST_APPLIES: Final[dict[ChargeKind, bool]] = {
    ChargeKind.CONNECTION: True,
    ChargeKind.SECURITY_DEPOSIT: False,
    ChargeKind.FIXED_MONTHLY: True,
}


def _whole(value: int, what: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TariffRuleError(f"{what} is a whole number, not {value!r}")
    if value < minimum:
        raise TariffRuleError(f"{what} must be at least {minimum}, not {value}")
    return value


# --- percentages ------------------------------------------------------------------------------------


def percent_to_bp(percent: Decimal, *, allow_zero: bool = False) -> int:
    """A percentage a person typed (Decimal('10') is 10 %) → basis points (1000). Refuses floats, which
    cannot say 0.1 exactly, anything outside 0 < p ≤ 100 (0 ≤ p with `allow_zero`, for a tax that does
    not apply), and more than two decimal places (finer than one basis point)."""
    if not isinstance(percent, Decimal):
        raise TariffRuleError(
            f"a percentage is given as a Decimal, e.g. Decimal('10') for 10 %, not {percent!r}"
        )
    if not percent.is_finite():
        raise TariffRuleError(f"{percent} is not a percentage")
    lowest_ok = percent >= 0 if allow_zero else percent > 0
    if not lowest_ok or percent > 100:
        bounds = "0 ≤ p ≤ 100" if allow_zero else "0 < p ≤ 100"
        raise TariffRuleError(f"{percent} % is outside {bounds}; 10 % is written 10, not 1000 or 0.10")
    scaled = percent * BP_PER_PERCENT
    if scaled != scaled.to_integral_value():
        raise TariffRuleError(f"{percent} % is finer than one basis point (0.01 %)")
    return int(scaled)


def bp_to_percent(bp: int) -> Decimal:
    check_bp(bp, allow_zero=True)
    return (Decimal(bp) / BP_PER_PERCENT).normalize()


def check_bp(bp: int, *, allow_zero: bool = False) -> int:
    """A stored rate in basis points: a whole number in 0 < bp ≤ 10 000 (or 0 with `allow_zero`)."""
    _whole(bp, "a rate in basis points", minimum=0 if allow_zero else 1)
    if bp > FULL_BP:
        raise TariffRuleError(f"{bp} basis points is more than 100 %")
    return bp


# --- taxes and gas ----------------------------------------------------------------------------------


def split_inclusive(gross_paise: int, tax_bp: int) -> tuple[int, int]:
    """A tax-inclusive amount → (net, tax). The net is rounded up, so the customer is never charged more
    tax than the exact figure; net + tax == gross always."""
    _whole(gross_paise, "an amount in paise")
    check_bp(tax_bp, allow_zero=True)
    net = -(-gross_paise * FULL_BP // (FULL_BP + tax_bp))  # ceiling division on integers
    return net, gross_paise - net


def tax_on(net_paise: int, tax_bp: int) -> int:
    """Tax added on a net amount, rounded down."""
    _whole(net_paise, "an amount in paise")
    check_bp(tax_bp, allow_zero=True)
    return net_paise * tax_bp // FULL_BP


def litres_for_paise(gas_value_paise: int, rate_paise_per_scm: int) -> int:
    """Gas (litres at standard conditions) that a gas value buys at a rate, rounded up."""
    _whole(gas_value_paise, "a gas value in paise")
    _whole(rate_paise_per_scm, "a rate in paise per SCM", minimum=1)
    return -(-gas_value_paise * LITRES_PER_SCM // rate_paise_per_scm)


def paise_for_litres(litres: int, rate_paise_per_scm: int) -> int:
    """What burnt gas is worth at a rate, rounded down: how used credit becomes revenue."""
    _whole(litres, "a volume in litres")
    _whole(rate_paise_per_scm, "a rate in paise per SCM", minimum=1)
    return litres * rate_paise_per_scm // LITRES_PER_SCM


@dataclass(frozen=True, slots=True)
class GasSplit:
    gross_paise: int  # what the customer's top-up left for gas, VAT included
    gas_value_paise: int  # the prepaid credit, net of VAT
    vat_paise: int
    litres: int  # what the gas value buys at the rate


def gas_value_for(paise: int, rate_paise_per_scm: int, vat_bp: int) -> GasSplit:
    """Split the gas part of a top-up into gas value and VAT, and say how much gas it buys.

    The rate is the price per SCM before VAT (VAT rates change by state and date on their own). The gas
    value is rounded up and VAT is the remainder, so gas value + VAT == paise to the paisa; the litres are
    rounded up too."""
    gas_value, vat = split_inclusive(paise, vat_bp)
    return GasSplit(paise, gas_value, vat, litres_for_paise(gas_value, rate_paise_per_scm))


def rate_with_tax(rate_paise_per_scm: int, tax_bp: int) -> int:
    """The price per SCM a customer sees, tax included (for display; never used to split)."""
    return rate_paise_per_scm + tax_on(rate_paise_per_scm, tax_bp)


# --- effective dates --------------------------------------------------------------------------------


def version_in_force(versions: Iterable[tuple[datetime, T]], at: datetime) -> T | None:
    """The version whose effective-from is the latest at or before `at` (a version is in force from its
    first instant), or None before the first one."""
    if at.tzinfo is None:
        raise TariffRuleError("a tariff moment is an aware datetime")
    best: tuple[datetime, T] | None = None
    for effective_from, value in versions:
        if effective_from <= at and (best is None or effective_from > best[0]):
            best = (effective_from, value)
    return best[1] if best is not None else None


# --- instalments and commission ---------------------------------------------------------------------


class InstalmentMethod(StrEnum):
    FIXED = "fixed"  # a fixed amount from each top-up
    PERCENT = "percent"  # a percentage of each top-up, capped per top-up


@dataclass(frozen=True, slots=True)
class InstalmentTerms:
    method: InstalmentMethod
    fixed_paise: int | None = None
    percent_bp: int | None = None
    cap_paise: int | None = None

    def __post_init__(self) -> None:
        if self.method is InstalmentMethod.FIXED:
            if self.fixed_paise is None or self.percent_bp is not None or self.cap_paise is not None:
                raise TariffRuleError("a fixed instalment has an amount and no percentage or cap")
            _whole(self.fixed_paise, "an instalment", minimum=1)
        else:
            if self.percent_bp is None or self.cap_paise is None or self.fixed_paise is not None:
                raise TariffRuleError("a percentage instalment has a percentage and a cap per top-up")
            check_bp(self.percent_bp)
            _whole(self.cap_paise, "an instalment cap", minimum=1)


def fixed_instalment(amount_paise: int) -> InstalmentTerms:
    return InstalmentTerms(InstalmentMethod.FIXED, fixed_paise=amount_paise)


def percent_instalment(percent: Decimal, *, cap_paise: int) -> InstalmentTerms:
    return InstalmentTerms(InstalmentMethod.PERCENT, percent_bp=percent_to_bp(percent), cap_paise=cap_paise)


def instalment_due(terms: InstalmentTerms, *, topup_paise: int, outstanding_paise: int) -> int:
    """What this top-up owes the plan: never more than is outstanding."""
    _whole(topup_paise, "a top-up")
    _whole(outstanding_paise, "an outstanding balance")
    if terms.method is InstalmentMethod.FIXED:
        due = terms.fixed_paise or 0
    else:
        due = min(topup_paise * (terms.percent_bp or 0) // FULL_BP, terms.cap_paise or 0)
    return min(due, outstanding_paise)


@dataclass(frozen=True, slots=True)
class CommissionRule:
    """An agent's commission: a percentage of the amount (capped, if a cap is set) or a flat amount."""

    percent_bp: int | None = None
    flat_paise: int | None = None
    cap_paise: int | None = None

    def __post_init__(self) -> None:
        if (self.percent_bp is None) == (self.flat_paise is None):
            raise TariffRuleError("a commission is either a percentage or a flat amount")
        if self.percent_bp is not None:
            check_bp(self.percent_bp)
        if self.flat_paise is not None:
            _whole(self.flat_paise, "a flat commission", minimum=1)
        if self.cap_paise is not None:
            _whole(self.cap_paise, "a commission cap", minimum=1)


def percent_commission(percent: Decimal, *, cap_paise: int | None = None) -> CommissionRule:
    return CommissionRule(percent_bp=percent_to_bp(percent), cap_paise=cap_paise)


def flat_commission(amount_paise: int, *, cap_paise: int | None = None) -> CommissionRule:
    return CommissionRule(flat_paise=amount_paise, cap_paise=cap_paise)


def commission_for(rule: CommissionRule, amount_paise: int) -> int:
    """Commission on a vend, rounded down, never above the cap nor above the amount itself."""
    _whole(amount_paise, "an amount in paise")
    raw = rule.flat_paise if rule.flat_paise is not None else amount_paise * (rule.percent_bp or 0) // FULL_BP
    capped = raw if rule.cap_paise is None else min(raw, rule.cap_paise)
    return min(capped, amount_paise)


# --- the top-up waterfall ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Allocation:
    amount_paise: int
    debt_paise: int
    instalment_paise: int
    fixed_charge_paise: int
    gas_credit_paise: int  # VAT included; `gas_value_for` splits it

    @property
    def deductions(self) -> list[tuple[str, int]]:
        """What was taken before gas, in waterfall order, omitting zeros (what a receipt lists)."""
        parts = [
            ("debt_recovery", self.debt_paise),
            ("instalment", self.instalment_paise),
            ("fixed_charges", self.fixed_charge_paise),
        ]
        return [(name, paise) for name, paise in parts if paise]


def allocate_topup(
    amount_paise: int,
    *,
    instalments_due: int,
    fixed_charges_due: int,
    debt_due: int,
    minimum_paise: int,
    maximum_paise: int | None = None,
    recovery_cap_bp: int = FULL_BP,
) -> Allocation:
    """Share a top-up out: debt recovery first, then instalments, then fixed charges, and the rest buys gas.

    Each part takes what is due or what is left, whichever is less, so no part is negative and the parts
    sum to the amount. `recovery_cap_bp` limits the three deductions together to a share of the top-up
    (rounded down), so a household in arrears still gets gas; the default lets them take it all.
    Refuses an amount below `minimum_paise` or above `maximum_paise` (`AmountOutOfRange`)."""
    _whole(amount_paise, "a top-up")
    _whole(minimum_paise, "the minimum top-up", minimum=1)
    for value, what in (
        (instalments_due, "instalments due"),
        (fixed_charges_due, "fixed charges due"),
        (debt_due, "debt due"),
    ):
        _whole(value, what)
    check_bp(recovery_cap_bp, allow_zero=True)
    if amount_paise < minimum_paise:
        raise AmountOutOfRange(f"the smallest top-up is {minimum_paise} paise; {amount_paise} paise is less")
    if maximum_paise is not None and amount_paise > maximum_paise:
        raise AmountOutOfRange(f"the largest top-up is {maximum_paise} paise; {amount_paise} paise is more")
    budget = amount_paise * recovery_cap_bp // FULL_BP
    taken: list[int] = []
    for due in (debt_due, instalments_due, fixed_charges_due):
        part = min(due, budget)
        taken.append(part)
        budget -= part
    debt, instalment, fixed = taken
    return Allocation(
        amount_paise=amount_paise,
        debt_paise=debt,
        instalment_paise=instalment,
        fixed_charge_paise=fixed,
        gas_credit_paise=amount_paise - debt - instalment - fixed,
    )
