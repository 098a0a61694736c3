"""Tariff versions in the database: the rate in force at boundaries, the past never edited, a price change
announced on the outbox, taxes per state and date, charges with GST, instalment plans."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from citygas.customers.service import do_register_customer
from citygas.platform import time as clock
from citygas.platform.errors import Conflict, ValidationFailed
from citygas.platform.outbox import OutboxEvent
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import Database
from citygas.tariffs.rules import ChargeKind, InstalmentMethod, TaxKind, instalment_due
from citygas.tariffs.service import (
    TARIFF_CHANGED,
    NoRateInForce,
    do_create_instalment_plan,
    do_set_charge,
    do_set_gas_rate,
    do_set_tax_rate,
    get_active_instalment_plan,
    get_charge,
    get_charge_area,
    get_gas_quote,
    get_gas_rate,
    get_tax_bp,
    list_gas_rates,
    terms_of,
)
from tests.conftest import make_tenant

NOW = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, 18, 30, tzinfo=UTC)  # 1 May 00:00 IST is 30 April 18:30 UTC; any instant works


def _area(db: Database, tenant: Tenant) -> uuid.UUID:
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        return get_charge_area(uow.session, "ALP-CA1").id


@pytest.fixture
def priced(db: Database) -> tuple[Tenant, uuid.UUID]:
    clock.freeze(NOW)
    tenant = make_tenant(db, "alpha", "ALP")
    area = _area(db, tenant)
    with db.unit_of_work(tenant=tenant.id) as uow:
        s = uow.session
        do_set_gas_rate(s, charge_area_id=area, rate_paise_per_scm=4_950, effective_from=NOW)
        do_set_gas_rate(
            s, charge_area_id=area, rate_paise_per_scm=5_200, effective_from=APRIL + timedelta(days=29)
        )
        do_set_tax_rate(s, tax=TaxKind.VAT, region="Maharashtra", percent=Decimal("3"), effective_from=NOW)
        do_set_tax_rate(s, tax=TaxKind.GST, region="IN", percent=Decimal("18"), effective_from=NOW)
        uow.commit()
    return tenant, area


def test_the_rate_in_force_changes_exactly_at_its_effective_moment(
    db: Database, priced: tuple[Tenant, uuid.UUID]
) -> None:
    tenant, area = priced
    change = APRIL + timedelta(days=29)
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        s = uow.session
        assert get_gas_rate(s, area, NOW).rate_paise_per_scm == 4_950
        assert get_gas_rate(s, area, change - timedelta(microseconds=1)).rate_paise_per_scm == 4_950
        assert get_gas_rate(s, area, change).rate_paise_per_scm == 5_200
        with pytest.raises(NoRateInForce, match="no gas rate is in force"):
            get_gas_rate(s, area, NOW - timedelta(microseconds=1))
        assert [t.rate_paise_per_scm for t in list_gas_rates(s, area)] == [4_950, 5_200]


def test_a_quote_gives_the_rate_and_the_state_vat_of_the_area(
    db: Database, priced: tuple[Tenant, uuid.UUID]
) -> None:
    tenant, area = priced
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        quote = get_gas_quote(uow.session, area, NOW + timedelta(hours=1))
    assert (quote.rate_paise_per_scm, quote.state, quote.vat_bp) == (4_950, "Maharashtra", 300)


def test_the_past_is_never_edited(db: Database, priced: tuple[Tenant, uuid.UUID]) -> None:
    tenant, area = priced
    clock.freeze(NOW + timedelta(days=2))
    with db.unit_of_work(tenant=tenant.id) as uow:
        with pytest.raises(ValidationFailed, match="is in the past; a rate change starts now or later"):
            do_set_gas_rate(uow.session, charge_area_id=area, rate_paise_per_scm=1, effective_from=NOW)
        with pytest.raises(ValidationFailed, match="naive datetime"):
            do_set_gas_rate(
                uow.session,
                charge_area_id=area,
                rate_paise_per_scm=1,
                effective_from=datetime(2027, 1, 1),  # noqa: DTZ001 - the point of the test
            )
    with (
        db.unit_of_work(tenant=tenant.id) as uow,
        pytest.raises(Conflict, match="already has a version starting at that moment"),
    ):
        do_set_gas_rate(
            uow.session,
            charge_area_id=area,
            rate_paise_per_scm=5_300,
            effective_from=APRIL + timedelta(days=29),
        )


def test_a_price_change_is_announced_for_currency_meters(
    db: Database, priced: tuple[Tenant, uuid.UUID]
) -> None:
    tenant, _ = priced
    with db.system(read_only=True) as uow:
        events = (
            uow.session.execute(
                select(OutboxEvent).where(OutboxEvent.topic == TARIFF_CHANGED).order_by(OutboxEvent.id)
            )
            .scalars()
            .all()
        )
    assert [
        (e.tenant_id, e.payload["rate_paise_per_scm"], e.payload["previous_rate_paise_per_scm"])
        for e in events
    ] == [
        (tenant.id, 4_950, None),
        (tenant.id, 5_200, 4_950),
    ]
    assert events[1].payload["charge_area_code"] == "ALP-CA1"
    assert events[1].payload["effective_from"] == "2026-04-30T18:30:00+00:00"


def test_vat_is_per_state_and_dated(db: Database, priced: tuple[Tenant, uuid.UUID]) -> None:
    tenant, _ = priced
    later = NOW + timedelta(days=10)
    with db.unit_of_work(tenant=tenant.id) as uow:
        do_set_tax_rate(
            uow.session, tax=TaxKind.VAT, region="Gujarat", percent=Decimal("15"), effective_from=NOW
        )
        do_set_tax_rate(
            uow.session, tax=TaxKind.VAT, region="Maharashtra", percent=Decimal("0"), effective_from=later
        )
        with pytest.raises(ValidationFailed, match="GST is national"):
            do_set_tax_rate(
                uow.session, tax=TaxKind.GST, region="Gujarat", percent=Decimal("18"), effective_from=NOW
            )
        with pytest.raises(ValidationFailed, match="not 1000"):
            do_set_tax_rate(
                uow.session, tax=TaxKind.VAT, region="Goa", percent=Decimal("1000"), effective_from=NOW
            )
        uow.commit()
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        s = uow.session
        assert get_tax_bp(s, TaxKind.VAT, "Gujarat", later) == 1_500
        assert get_tax_bp(s, TaxKind.VAT, "Maharashtra", later - timedelta(microseconds=1)) == 300
        assert get_tax_bp(s, TaxKind.VAT, "Maharashtra", later) == 0
        with pytest.raises(NoRateInForce, match="no VAT rate is in force in Goa"):
            get_tax_bp(s, TaxKind.VAT, "Goa", later)


def test_charges_carry_gst_except_the_refundable_deposit(
    db: Database, priced: tuple[Tenant, uuid.UUID]
) -> None:
    tenant, area = priced
    with db.unit_of_work(tenant=tenant.id) as uow:
        for kind, amount in (
            (ChargeKind.CONNECTION, 590_000),
            (ChargeKind.SECURITY_DEPOSIT, 500_000),
            (ChargeKind.FIXED_MONTHLY, 2_999),
        ):
            do_set_charge(
                uow.session, charge_area_id=area, kind=kind, amount_paise=amount, effective_from=NOW
            )
        uow.commit()
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        s = uow.session
        connection = get_charge(s, area, ChargeKind.CONNECTION, NOW)
        deposit = get_charge(s, area, ChargeKind.SECURITY_DEPOSIT, NOW)
        fixed = get_charge(s, area, ChargeKind.FIXED_MONTHLY, NOW)
    assert (connection.net_paise, connection.gst_paise, connection.gross_paise) == (590_000, 106_200, 696_200)
    assert (deposit.gst_paise, deposit.gross_paise) == (0, 500_000)
    assert (fixed.gst_paise, fixed.gross_paise) == (539, 3_538)  # 539.82 rounded down


def test_an_instalment_plan_takes_its_terms_in_basis_points(
    db: Database, priced: tuple[Tenant, uuid.UUID]
) -> None:
    tenant, _ = priced
    with db.unit_of_work(tenant=tenant.id) as uow:
        customer = do_register_customer(
            uow.session, name="Asha Rao", phone="9812345678", charge_area_code="ALP-CA1", address="1 A St"
        )
        plan = do_create_instalment_plan(
            uow.session,
            customer_id=customer.id,
            purpose="connection",
            total_paise=696_200,
            percent=Decimal("10"),
            cap_paise=20_000,
        )
        with pytest.raises(Conflict, match="active instalment plan already"):
            do_create_instalment_plan(
                uow.session, customer_id=customer.id, purpose="again", total_paise=1, fixed_paise=1
            )
        uow.commit()
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        found = get_active_instalment_plan(uow.session, customer.id)
    assert found is not None
    assert found.id == plan.id
    terms = terms_of(found)
    assert (terms.method, terms.percent_bp, terms.cap_paise) == (InstalmentMethod.PERCENT, 1_000, 20_000)
    assert instalment_due(terms, topup_paise=50_000, outstanding_paise=696_200) == 5_000


def test_an_instalment_plan_refuses_mixed_or_confused_terms(
    db: Database, priced: tuple[Tenant, uuid.UUID]
) -> None:
    tenant, _ = priced
    with db.unit_of_work(tenant=tenant.id) as uow:
        customer = do_register_customer(
            uow.session, name="Bina Das", phone="9812345679", charge_area_code="ALP-CA1", address="2 A St"
        )
        common = {"customer_id": customer.id, "purpose": "connection", "total_paise": 100_000}
        with pytest.raises(ValidationFailed, match="choose one"):
            do_create_instalment_plan(uow.session, **common, fixed_paise=1_000, percent=Decimal("10"))  # type: ignore[arg-type]
        with pytest.raises(ValidationFailed, match="needs a cap"):
            do_create_instalment_plan(uow.session, **common, percent=Decimal("10"))  # type: ignore[arg-type]
        with pytest.raises(ValidationFailed, match="not 1000"):
            do_create_instalment_plan(uow.session, **common, percent=Decimal("1000"), cap_paise=1)  # type: ignore[arg-type]
