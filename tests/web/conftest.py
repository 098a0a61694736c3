"""Fixtures of the web tests: two CGDs with data worth protecting, built on the shared `world`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.customers.service import do_register_customer
from citygas.identity import service as identity_service
from citygas.identity.models import StaffUser
from citygas.identity.rules import API_KEY_SCOPES, Permission, Role
from citygas.meters.models import MeterModel
from citygas.meters.rules import sts_meter_number
from citygas.meters.service import (
    STS_TEST_SGC,
    STS_TEST_VENDING_KEY,
    do_meter_transition,
    do_register_meter,
    do_store_vending_key,
)
from citygas.platform.settings import get_settings
from citygas.platform.tenancy import ChargeArea, GeographicalArea, Tenant
from citygas.platform.time import utcnow
from citygas.platform.uow import Database
from citygas.platform.workflow import WorkItem
from citygas.tariffs.rules import TaxKind
from citygas.tariffs.service import do_set_gas_rate, do_set_tax_rate
from citygas.vending.rules import Channel, VendRequest
from citygas.vending.service import do_vend
from tests.conftest import TEST_ACTOR, World, make_tenant, make_user

TENANT_ROLES = [r.value for r in Role if r is not Role.OPERATOR_ADMIN]


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 at production cost takes ~0.15 s a hash, and the world fixture hashes 18 passwords.
    These tests are about who may reach what, not about hash cost, so they hash cheaply; the hash is
    still argon2id and is verified the same way."""
    monkeypatch.setattr(
        identity_service, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@dataclass
class TenantData:
    """What one CGD holds, and the strings that identify it to a person reading a page."""

    tenant: Tenant
    consumer_numbers: list[str] = field(default_factory=list)
    customer_names: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    customer_ids: list[uuid.UUID] = field(default_factory=list)
    usernames: list[str] = field(default_factory=list)
    user_ids: list[uuid.UUID] = field(default_factory=list)
    area_codes: list[str] = field(default_factory=list)
    area_ids: list[uuid.UUID] = field(default_factory=list)
    api_key_id: uuid.UUID | None = None
    api_key: str = ""  # the secret, as its client holds it
    api_key_name: str = ""
    work_item_title: str = ""
    meter_serials: list[str] = field(default_factory=list)
    meter_numbers: list[str] = field(default_factory=list)
    vend_ids: list[uuid.UUID] = field(default_factory=list)
    receipt_numbers: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def identifying_strings(self) -> list[str]:
        return [
            self.tenant.name,
            self.tenant.slug + ".",
            str(self.tenant.id),
            *self.consumer_numbers,
            *self.customer_names,
            *self.phones,
            *map(str, self.customer_ids),
            *self.usernames,
            *map(str, self.user_ids),
            *self.area_codes,
            *map(str, self.area_ids),
            str(self.api_key_id),
            self.api_key.split("_")[1],
            self.api_key_name,
            self.work_item_title,
            *self.meter_serials,
            *self.meter_numbers,
            *map(str, self.vend_ids),
            *self.receipt_numbers,
            *self.tokens,
        ]


def populate(
    db: Database,
    tenant: Tenant,
    customers: list[tuple[str, str]],
    *,
    key_scopes: list[str],
    label: str,
    meter_drn: int,
) -> TenantData:
    data = TenantData(tenant)
    with db.unit_of_work(tenant=tenant.id, actor=TEST_ACTOR) as uow:
        for name, phone in customers:
            customer = do_register_customer(
                uow.session,
                name=name,
                phone=phone,
                charge_area_code=f"{tenant.code}-CA1",
                address=f"{label} Heights, Pune",
            )
            data.consumer_numbers.append(customer.consumer_number)
            data.customer_names.append(customer.name)
            data.phones.append(customer.phone)
            data.customer_ids.append(customer.id)
        key, secret = identity_service.do_create_api_key(
            uow.session, name=f"{label} SAP IS-U sync", scopes=key_scopes, created_by="test setup"
        )
        data.api_key_id, data.api_key, data.api_key_name = key.id, secret, key.name
        data.work_item_title = f"{label} meter swap at {label} Heights"
        uow.session.add(
            WorkItem(
                workflow="job",
                entity_id=uuid.uuid4(),
                title=data.work_item_title,
                state="open",
                queue_role="back_office",
                opened_at=utcnow(),
                entered_state_at=utcnow(),
                due_at=utcnow(),
            )
        )
        add_meter(uow.session, data, drn=meter_drn)
        add_vend(uow.session, data, drn=meter_drn + 1)
        uow.commit()
    # Filtered by hand: the fixture must not lean on the tenant wall the walk is there to test.
    with db.unit_of_work(tenant=tenant.id, actor=TEST_ACTOR, read_only=True) as uow:
        for user in uow.session.execute(
            select(StaffUser).where(StaffUser.tenant_id == tenant.id).order_by(StaffUser.username)
        ).scalars():
            data.usernames.append(user.username)
            data.user_ids.append(user.id)
        for ga in uow.session.execute(
            select(GeographicalArea).where(GeographicalArea.tenant_id == tenant.id)
        ).scalars():
            data.area_codes.append(ga.code)
            data.area_ids.append(ga.id)
        for ca in uow.session.execute(select(ChargeArea).where(ChargeArea.tenant_id == tenant.id)).scalars():
            data.area_codes.append(ca.code)
            data.area_ids.append(ca.id)
    return data


def add_meter(session: Session, data: TenantData, *, drn: int) -> None:
    """A meter allocated to a kit, on a simulated key: the meter routes take its serial. Codes differ
    per tenant, so that setting up B does not lean on the tenant wall the walk is there to test."""
    code = data.tenant.code
    session.add(
        MeterModel(
            code=f"{code}-G1.6",
            name="G1.6 prepaid gas meter",
            manufacturer="Test Meters",
            manufacturer_code=96,
            qmax_litres_per_hour=2500,
            mode="currency",
            credit_subclass=6,
            base_units_per_count=10,
            token_classes=[0, 1, 2],
        )
    )
    do_store_vending_key(
        session,
        master_key=get_settings().master_key_bytes,
        key_id=f"{code}-sts-test",
        label="STS test key",
        vending_key=STS_TEST_VENDING_KEY,
        sgc=STS_TEST_SGC,
        is_test_key=True,
    )
    meter = do_register_meter(
        session,
        serial=f"{code}M{drn:07d}",
        sts_meter_number=sts_meter_number(drn),
        model_code=f"{code}-G1.6",
        vending_key_id=f"{code}-sts-test",
        simulated=True,
    )
    # Allocated, so that "install at a consumer number" is one step away: the walk tries A's numbers there.
    do_meter_transition(session, meter, "allocate", permissions=frozenset({Permission.METER_MANAGE.value}))
    data.meter_serials.append(meter.serial)
    data.meter_numbers.append(meter.sts_meter_number)


def add_vend(session: Session, data: TenantData, *, drn: int) -> None:
    """A top-up on an active meter of the tenant's first customer: the vend routes take its id."""
    code = data.tenant.code
    earlier = utcnow() - timedelta(days=1)
    do_set_tax_rate(
        session,
        tax=TaxKind.VAT,
        region="Maharashtra",
        percent=Decimal("3"),
        effective_from=earlier,
        now=earlier,
    )
    for area in session.execute(select(ChargeArea).where(ChargeArea.tenant_id == data.tenant.id)).scalars():
        do_set_gas_rate(
            session, charge_area_id=area.id, rate_paise_per_scm=4_850, effective_from=earlier, now=earlier
        )
    meter = do_register_meter(
        session,
        serial=f"{code}M{drn:07d}",
        sts_meter_number=sts_meter_number(drn),
        model_code=f"{code}-G1.6",
        vending_key_id=f"{code}-sts-test",
        simulated=True,
    )
    for action in ("allocate", "install", "commission", "activate"):
        do_meter_transition(
            session,
            meter,
            action,
            permissions=frozenset({"meter.manage", "meter.install"}),
            customer_number=data.consumer_numbers[0] if action == "install" else None,
        )
    outcome = do_vend(
        session,
        VendRequest(
            channel=Channel.B2B,
            amount_paise=50_000,
            idempotency_key=f"{code}-v1",
            consumer_number=data.consumer_numbers[0],
        ),
        master_key=get_settings().master_key_bytes,
    )
    data.vend_ids.append(outcome.vend.id)
    data.receipt_numbers.append(outcome.vend.receipt_number)
    data.tokens.extend(t["token"] for t in outcome.vend.tokens)
    data.meter_serials.append(meter.serial)
    data.meter_numbers.append(meter.sts_meter_number)


@dataclass
class Populated:
    world: World
    a: TenantData
    b: TenantData
    operator: Tenant
    b_everything: str  # username of B's user holding every tenant-level role


@pytest.fixture
def populated(db: Database, world: World) -> Populated:
    operator = make_tenant(db, "operator", "OPS", kind="operator")
    make_user(db, operator, "operator.admin", [Role.OPERATOR_ADMIN.value], world.password)
    make_user(db, world.b, "bravo.everything", TENANT_ROLES, world.password)
    a = populate(
        db,
        world.a,
        [("Zenobia Fernandes", "9811100001"), ("Quentin Alvares", "9811100002")],
        key_scopes=["customers:read"],
        label="Alphaville",
        meter_drn=1001,
    )
    b = populate(
        db,
        world.b,
        [("Bhavesh Borkar", "9822200001")],
        key_scopes=sorted(API_KEY_SCOPES),
        label="Bravopur",
        meter_drn=2002,
    )
    return Populated(world, a, b, operator, "bravo.everything")
