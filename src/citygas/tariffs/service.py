"""Tariff use cases: schedule a gas price, a tax rate or a charge (append-only versions), read what is in
force at a moment, and set up instalment plans.

"Never edit the past": a new version may start now or later, never earlier, and a moment that already
has a version is refused. What was in force yesterday is what yesterday's receipts said.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.platform.db import flush_unique
from citygas.platform.errors import Conflict, NotFound, ValidationFailed
from citygas.platform.ids import uuid7
from citygas.platform.outbox import emit
from citygas.platform.tenancy import ChargeArea, GeographicalArea
from citygas.platform.time import ensure_aware, utcnow
from citygas.tariffs.models import ChargeRate, GasTariff, InstalmentPlan, TaxRate
from citygas.tariffs.rules import (
    GST_APPLIES,
    GST_REGION,
    ChargeKind,
    InstalmentMethod,
    InstalmentTerms,
    TariffRuleError,
    TaxKind,
    fixed_instalment,
    percent_instalment,
    percent_to_bp,
    tax_on,
)

TARIFF_CHANGED = "tariff.changed"


class NoRateInForce(NotFound):
    code = "no_rate_in_force"


def _check_from(effective_from: datetime, now: datetime | None) -> datetime:
    try:
        start = ensure_aware(effective_from)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from exc
    if start < (now or utcnow()):
        raise ValidationFailed(
            f"{start.isoformat()} is in the past; a rate change starts now or later, the past is never edited"
        )
    return start


def _insert_version(session: Session, row: object, what: str) -> None:
    session.add(row)
    flush_unique(
        session, Conflict(f"{what} already has a version starting at that moment; choose another moment")
    )


def get_charge_area(session: Session, code: str) -> ChargeArea:
    area = session.execute(select(ChargeArea).where(ChargeArea.code == code.strip())).scalar_one_or_none()
    if area is None:
        raise NotFound(f"no charge area {code}")
    return area


# --- gas price ---------------------------------------------------------------------------------------


def do_set_gas_rate(
    session: Session,
    *,
    charge_area_id: uuid.UUID,
    rate_paise_per_scm: int,
    effective_from: datetime,
    note: str = "",
    now: datetime | None = None,
) -> GasTariff:
    """Schedule a new price per SCM (before VAT) for a charge area and announce it (`tariff.changed`), so
    that currency-mode meters get a SetTariffRate token at their next vend once it is in force."""
    if (
        isinstance(rate_paise_per_scm, bool)
        or not isinstance(rate_paise_per_scm, int)
        or rate_paise_per_scm <= 0
    ):
        raise ValidationFailed("a gas rate is a positive whole number of paise per SCM")
    area = session.get(ChargeArea, charge_area_id)
    if area is None:
        raise NotFound(f"no charge area {charge_area_id}")
    start = _check_from(effective_from, now)
    previous = _gas_tariff_at(session, charge_area_id, start)
    row = GasTariff(
        id=uuid7(),
        charge_area_id=charge_area_id,
        effective_from=start,
        rate_paise_per_scm=rate_paise_per_scm,
        note=note[:200],
        created_at=utcnow(),
    )
    _insert_version(session, row, f"the gas rate of {area.code}")
    emit(
        session,
        TARIFF_CHANGED,
        {
            "tariff_id": str(row.id),
            "charge_area_id": str(charge_area_id),
            "charge_area_code": area.code,
            "effective_from": start.isoformat(),
            "rate_paise_per_scm": rate_paise_per_scm,
            "previous_rate_paise_per_scm": previous.rate_paise_per_scm if previous else None,
        },
    )
    return row


def _gas_tariff_at(session: Session, charge_area_id: uuid.UUID, at: datetime) -> GasTariff | None:
    # Served by uq_gas_tariff_area_from: the latest version at or before the moment.
    return session.execute(
        select(GasTariff)
        .where(GasTariff.charge_area_id == charge_area_id, GasTariff.effective_from <= ensure_aware(at))
        .order_by(GasTariff.effective_from.desc())
        .limit(1)
    ).scalar_one_or_none()


def get_gas_rate(session: Session, charge_area_id: uuid.UUID, at: datetime) -> GasTariff:
    """The gas tariff in force in a charge area at a moment (a version is in force from its first instant)."""
    found = _gas_tariff_at(session, charge_area_id, at)
    if found is None:
        raise NoRateInForce(f"no gas rate is in force in charge area {charge_area_id} at {at.isoformat()}")
    return found


def list_gas_rates(session: Session, charge_area_id: uuid.UUID) -> list[GasTariff]:
    """The price history of a charge area, oldest first, scheduled changes included."""
    return list(
        session.execute(
            select(GasTariff)
            .where(GasTariff.charge_area_id == charge_area_id)
            .order_by(GasTariff.effective_from)
        ).scalars()
    )


# --- taxes -------------------------------------------------------------------------------------------


def do_set_tax_rate(
    session: Session,
    *,
    tax: TaxKind,
    region: str,
    percent: Decimal,
    effective_from: datetime,
    now: datetime | None = None,
) -> TaxRate:
    """Schedule a tax rate: VAT on gas for a state, or GST on services (region 'IN'). `percent` is what a
    person reads on the notification (Decimal('18') for 18 %); it is stored as basis points."""
    region = region.strip()
    if tax is TaxKind.GST and region != GST_REGION:
        raise ValidationFailed(f"GST is national: its region is {GST_REGION}")
    if tax is TaxKind.VAT and (not region or region == GST_REGION or len(region) > 64):
        raise ValidationFailed("VAT on gas is set per state: name the state")
    try:
        bp = percent_to_bp(percent, allow_zero=True)
    except TariffRuleError as exc:
        raise ValidationFailed(str(exc)) from exc
    row = TaxRate(
        id=uuid7(),
        tax=tax.value,
        region=region,
        effective_from=_check_from(effective_from, now),
        rate_bp=bp,
        created_at=utcnow(),
    )
    _insert_version(session, row, f"{tax.value.upper()} in {region}")
    return row


def get_tax_bp(session: Session, tax: TaxKind, region: str, at: datetime) -> int:
    found = session.execute(
        select(TaxRate.rate_bp)
        .where(
            TaxRate.tax == tax.value,
            TaxRate.region == region.strip(),
            TaxRate.effective_from <= ensure_aware(at),
        )
        .order_by(TaxRate.effective_from.desc())
        .limit(1)
    ).scalar_one_or_none()
    if found is None:
        raise NoRateInForce(f"no {tax.value.upper()} rate is in force in {region} at {at.isoformat()}")
    return int(found)


def get_state_of_area(session: Session, charge_area_id: uuid.UUID) -> str:
    state = session.execute(
        select(GeographicalArea.state)
        .join(ChargeArea, ChargeArea.ga_id == GeographicalArea.id)
        .where(ChargeArea.id == charge_area_id)
    ).scalar_one_or_none()
    if state is None:
        raise NotFound(f"no charge area {charge_area_id}")
    return str(state)


@dataclass(frozen=True, slots=True)
class GasQuote:
    """What a vend needs to price gas in a charge area at a moment."""

    tariff_id: uuid.UUID
    rate_paise_per_scm: int
    state: str
    vat_bp: int
    effective_from: datetime


def get_gas_quote(session: Session, charge_area_id: uuid.UUID, at: datetime) -> GasQuote:
    tariff = get_gas_rate(session, charge_area_id, at)
    state = get_state_of_area(session, charge_area_id)
    return GasQuote(
        tariff_id=tariff.id,
        rate_paise_per_scm=tariff.rate_paise_per_scm,
        state=state,
        vat_bp=get_tax_bp(session, TaxKind.VAT, state, at),
        effective_from=tariff.effective_from,
    )


# --- charges -----------------------------------------------------------------------------------------


def do_set_charge(
    session: Session,
    *,
    charge_area_id: uuid.UUID,
    kind: ChargeKind,
    amount_paise: int,
    effective_from: datetime,
    now: datetime | None = None,
) -> ChargeRate:
    """Schedule a charge (before GST) for a charge area."""
    if isinstance(amount_paise, bool) or not isinstance(amount_paise, int) or amount_paise < 0:
        raise ValidationFailed("a charge is a whole number of paise, zero or more")
    if session.get(ChargeArea, charge_area_id) is None:
        raise NotFound(f"no charge area {charge_area_id}")
    row = ChargeRate(
        id=uuid7(),
        charge_area_id=charge_area_id,
        kind=kind.value,
        effective_from=_check_from(effective_from, now),
        amount_paise=amount_paise,
        created_at=utcnow(),
    )
    _insert_version(session, row, f"the {kind.value} charge")
    return row


@dataclass(frozen=True, slots=True)
class ChargeQuote:
    kind: ChargeKind
    net_paise: int
    gst_paise: int
    gst_bp: int

    @property
    def gross_paise(self) -> int:
        return self.net_paise + self.gst_paise


def get_charge(session: Session, charge_area_id: uuid.UUID, kind: ChargeKind, at: datetime) -> ChargeQuote:
    """A charge in force at a moment, with GST where it applies (rounded down)."""
    amount = session.execute(
        select(ChargeRate.amount_paise)
        .where(
            ChargeRate.charge_area_id == charge_area_id,
            ChargeRate.kind == kind.value,
            ChargeRate.effective_from <= ensure_aware(at),
        )
        .order_by(ChargeRate.effective_from.desc())
        .limit(1)
    ).scalar_one_or_none()
    if amount is None:
        raise NoRateInForce(
            f"no {kind.value} charge is in force in charge area {charge_area_id} at {at.isoformat()}"
        )
    gst_bp = get_tax_bp(session, TaxKind.GST, GST_REGION, at) if GST_APPLIES[kind] else 0
    return ChargeQuote(kind=kind, net_paise=int(amount), gst_paise=tax_on(int(amount), gst_bp), gst_bp=gst_bp)


# --- instalment plans --------------------------------------------------------------------------------


def do_create_instalment_plan(
    session: Session,
    *,
    customer_id: uuid.UUID,
    purpose: str,
    total_paise: int,
    fixed_paise: int | None = None,
    percent: Decimal | None = None,
    cap_paise: int | None = None,
) -> InstalmentPlan:
    """A plan to pay `total_paise` off from top-ups: a fixed amount each time, or a percentage of each
    top-up capped at `cap_paise`. One active plan per customer. The amount owed is posted to the ledger
    by the caller (debit instalment receivable), in the same transaction."""
    if isinstance(total_paise, bool) or not isinstance(total_paise, int) or total_paise <= 0:
        raise ValidationFailed("an instalment plan is for a positive whole number of paise")
    try:
        if fixed_paise is not None and percent is None and cap_paise is None:
            terms = fixed_instalment(fixed_paise)
        elif percent is not None and fixed_paise is None:
            if cap_paise is None:
                raise ValidationFailed("a percentage instalment needs a cap per top-up")
            terms = percent_instalment(percent, cap_paise=cap_paise)
        else:
            raise ValidationFailed("an instalment is a fixed amount, or a percentage with a cap: choose one")
    except TariffRuleError as exc:
        raise ValidationFailed(str(exc)) from exc
    if get_active_instalment_plan(session, customer_id) is not None:
        raise Conflict("the customer has an active instalment plan already")
    row = InstalmentPlan(
        id=uuid7(),
        customer_id=customer_id,
        purpose=purpose.strip()[:40],
        total_paise=total_paise,
        method=terms.method.value,
        fixed_paise=terms.fixed_paise,
        percent_bp=terms.percent_bp,
        cap_paise=terms.cap_paise,
        status="active",
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def get_active_instalment_plan(session: Session, customer_id: uuid.UUID) -> InstalmentPlan | None:
    return session.execute(
        select(InstalmentPlan)
        .where(InstalmentPlan.customer_id == customer_id, InstalmentPlan.status == "active")
        .order_by(InstalmentPlan.created_at)
        .limit(1)
    ).scalar_one_or_none()


def terms_of(plan: InstalmentPlan) -> InstalmentTerms:
    return InstalmentTerms(
        InstalmentMethod(plan.method),
        fixed_paise=plan.fixed_paise,
        percent_bp=plan.percent_bp,
        cap_paise=plan.cap_paise,
    )


def do_complete_instalment_plan(session: Session, plan: InstalmentPlan) -> InstalmentPlan:
    """Mark a plan paid off (the vend path calls this when the receivable reaches zero)."""
    plan.status = "completed"
    session.flush()
    return plan
