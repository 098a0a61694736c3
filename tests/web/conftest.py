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

from citygas.care.service import do_raise_emergency, do_raise_ticket
from citygas.customers.models import Customer
from citygas.customers.profile_service import do_build_export, do_request_export
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
from citygas.payments.autopay.service import do_confirm_mandate, do_start_mandate
from citygas.payments.bbps.rules import PaymentChannel, PaymentMode
from citygas.payments.bbps.service import PaymentNotice, do_accept_payment, do_fetch_bill
from citygas.payments.csc.models import CscAgent
from citygas.payments.csc.service import (
    do_approve_float_topup,
    do_create_agent,
    do_csc_vend,
    do_request_float_topup,
)
from citygas.payments.gateway.service import do_confirm_checkout, do_create_order
from citygas.payments.gateway.simulator import GatewaySimulator
from citygas.payments.settlement.rules import SettlementSource
from citygas.payments.settlement.service import do_import_settlement_report
from citygas.platform.settings import get_settings
from citygas.platform.tenancy import ChargeArea, GeographicalArea, Tenant
from citygas.platform.time import utcnow
from citygas.platform.uow import Database
from citygas.platform.workflow import WorkItem
from citygas.tariffs.rules import TaxKind, percent_commission
from citygas.tariffs.service import do_set_gas_rate, do_set_tax_rate
from citygas.vending.models import Vend
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
    agent_ids: list[uuid.UUID] = field(default_factory=list)
    agent_csc_ids: list[str] = field(default_factory=list)
    agent_names: list[str] = field(default_factory=list)  # with the kiosk's village
    topup_ids: list[uuid.UUID] = field(default_factory=list)  # approved first, then pending
    topup_references: list[str] = field(default_factory=list)
    bbps_txn_refs: list[str] = field(default_factory=list)
    bbps_fetch_references: list[str] = field(default_factory=list)
    gateway_order_ids: list[str] = field(default_factory=list)
    gateway_payment_ids: list[str] = field(default_factory=list)
    settlement_pks: list[uuid.UUID] = field(default_factory=list)
    settlement_ids: list[str] = field(default_factory=list)  # the gateway's settlement id
    settlement_report: str = ""  # the report the settlement was imported from, as the gateway sent it
    ticket_numbers: list[str] = field(default_factory=list)  # a complaint, then a gas leak
    export_ids: list[uuid.UUID] = field(default_factory=list)  # a household's data export, ready
    mandate_ids: list[uuid.UUID] = field(default_factory=list)  # an active auto top-up mandate

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
            *map(str, self.agent_ids),
            *self.agent_csc_ids,
            *self.agent_names,
            *map(str, self.topup_ids),
            *self.topup_references,
            *self.bbps_txn_refs,
            *self.bbps_fetch_references,
            *self.gateway_order_ids,
            *self.gateway_payment_ids,
            *map(str, self.settlement_pks),
            *self.settlement_ids,
            *self.ticket_numbers,
            *map(str, self.export_ids),
            *map(str, self.mandate_ids),
        ]


def populate(
    db: Database,
    tenant: Tenant,
    customers: list[tuple[str, str]],
    *,
    key_scopes: list[str],
    label: str,
    meter_drn: int,
    agent_usernames: list[str],
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
    add_payments(db, data, agent_usernames=agent_usernames, label=label)
    add_household_rows(db, data)
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


FLOAT_APPROVER = frozenset({Permission.FLOAT_APPROVE.value})
SETTLEMENT_HEADER = "payment_id,amount,fee,tax,settlement_id,settled_at\n"


def add_payments(db: Database, data: TenantData, *, agent_usernames: list[str], label: str) -> None:
    """The payment channels' rows, each made through its service as the channel makes it: a CSC agent per
    username with a float top-up approved and one pending, and a vend from the float; a BBPS bill fetch
    and payment; a gateway order paid by UPI in the simulator and confirmed by its signed callback; and
    the gateway's settlement of that payment. All for the tenant's first customer (whose meter is active),
    every code carrying the tenant's code so that B's setup never meets A's rows."""
    code, tenant_id = data.tenant.code, data.tenant.id
    master_key = get_settings().master_key_bytes
    consumer = data.consumer_numbers[0]
    for n, username in enumerate(agent_usernames, start=1):
        with db.unit_of_work(tenant=tenant_id, actor=TEST_ACTOR) as uow:
            agent = do_create_agent(
                uow.session,
                username=username,
                csc_id=f"{code}-CSC-{n:04d}",
                village=f"{label} Khurd {n}",
                rule=percent_commission(Decimal("1.5"), cap_paise=2_000),
            )
            approved = do_request_float_topup(
                uow.session,
                agent,
                amount_paise=200_000,
                reference=f"{code}UTR{n}A",
                requested_by="test setup",
            )
            do_approve_float_topup(uow.session, approved, permissions=FLOAT_APPROVER)
            pending = do_request_float_topup(
                uow.session,
                agent,
                amount_paise=100_000,
                reference=f"{code}UTR{n}P",
                requested_by="test setup",
            )
            uow.commit()
            data.agent_ids.append(agent.id)
            data.agent_csc_ids.append(agent.csc_id)
            data.agent_names.extend([agent.name, agent.village])
            data.topup_ids.extend([approved.id, pending.id])
            data.topup_references.extend([approved.reference, pending.reference])
    with db.unit_of_work(tenant=tenant_id, actor=TEST_ACTOR) as uow:
        first_agent = uow.session.get(CscAgent, data.agent_ids[0])
        assert first_agent is not None
        csc = do_csc_vend(
            uow.session, first_agent, consumer, 20_000, f"{code}-form-0001", master_key=master_key
        )
        uow.commit()
        note_vend(data, csc.vend)
    with db.unit_of_work(tenant=tenant_id, actor=TEST_ACTOR) as uow:
        fetch, _ = do_fetch_bill(
            uow.session,
            consumer_number=consumer,
            agent_id=f"{code}AGT0001",
            payment_channel=PaymentChannel.AGENT,
        )
        bbps = do_accept_payment(
            uow.session,
            PaymentNotice(
                bbps_txn_ref=f"{code}BBPS000001",
                consumer_number=consumer,
                amount_paise=30_000,
                paid_at=utcnow() - timedelta(minutes=1),
                payment_mode=PaymentMode.CASH,
                payment_channel=PaymentChannel.AGENT,
                agent_id=f"{code}AGT0001",
                fetch_reference=fetch.fetch_reference,
                customer_mobile=data.phones[0],
            ),
            master_key=master_key,
        )
        uow.commit()
        data.bbps_fetch_references.append(fetch.fetch_reference)
        data.bbps_txn_refs.append(bbps.payment.bbps_txn_ref)
        note_vend(data, bbps.vend)
    with db.unit_of_work(tenant=tenant_id, actor=TEST_ACTOR) as uow:
        gateway = GatewaySimulator.for_tenant(uow.session, master_key=master_key)
        order = do_create_order(uow.session, gateway, consumer_number=consumer, amount_paise=40_000)
        uow.commit()
        order_id = order.gateway_order_id
    with db.unit_of_work(tenant=tenant_id, actor=TEST_ACTOR) as uow:
        paid = GatewaySimulator.for_tenant(uow.session, master_key=master_key).pay(
            order_id, method="upi", vpa=f"{data.tenant.slug}@upi"
        )
        uow.commit()
    with db.unit_of_work(tenant=tenant_id, actor=TEST_ACTOR) as uow:
        settled = do_confirm_checkout(
            uow.session,
            GatewaySimulator.for_tenant(uow.session, master_key=master_key),
            order_id=paid.order_id,
            payment_id=paid.payment_id,
            signature=paid.signature,
            master_key=master_key,
        )
        uow.commit()
        assert settled.vend is not None, settled.payment.vend_error
        data.gateway_order_ids.append(order_id)
        data.gateway_payment_ids.append(paid.payment_id)
        note_vend(data, settled.vend)
    with db.unit_of_work(tenant=tenant_id, actor=TEST_ACTOR) as uow:
        report = SETTLEMENT_HEADER + f"{paid.payment_id},40000,472,72,{code}setl0001,{utcnow().isoformat()}\n"
        imported = do_import_settlement_report(
            uow.session,
            text=report,
            source=SettlementSource.GATEWAY,
            file_name=f"{code}-settlement.csv",
            imported_by="test setup",
        )
        uow.commit()
        (one,) = imported.settlements
        assert one.settlement.matched_count == 1
        data.settlement_pks.append(one.settlement.id)
        data.settlement_ids.append(one.settlement.settlement_id)
        data.settlement_report = report


def add_household_rows(db: Database, data: TenantData) -> None:
    """What households make in the customer app, each through its service: a complaint raised by the
    first customer and a gas leak reported by the last, a copy of the first household's data (built, so
    it could be downloaded), and an auto top-up mandate of the first customer approved in the simulated
    UPI app (as the demo seed does it)."""
    tenant_id = data.tenant.id
    with db.unit_of_work(tenant=tenant_id, actor=TEST_ACTOR) as uow:
        first = uow.session.get(Customer, data.customer_ids[0])
        last = uow.session.get(Customer, data.customer_ids[-1])
        assert first is not None
        assert last is not None
        complaint = do_raise_ticket(
            uow.session, customer=first, category_code="billing", description="The bill looks too high"
        )
        leak = do_raise_emergency(uow.session, customer=last)
        export = do_request_export(uow.session, customer=first)
        uow.commit()
        data.ticket_numbers.extend([complaint.number, leak.ticket.number])
        export_id = export.id
    with db.unit_of_work(tenant=tenant_id, actor=TEST_ACTOR) as uow:
        built = do_build_export(uow.session, export_id)
        assert built is not None
        assert built.status == "ready"
        uow.commit()
        data.export_ids.append(export_id)
    with db.unit_of_work(tenant=tenant_id, actor=TEST_ACTOR) as uow:
        gateway = GatewaySimulator.for_tenant(uow.session, master_key=get_settings().master_key_bytes)
        first = uow.session.get(Customer, data.customer_ids[0])
        assert first is not None
        vpa = f"{data.tenant.slug}.household@upi"
        mandate = do_start_mandate(
            uow.session,
            gateway,
            customer=first,
            threshold_paise=15_000,
            amount_paise=50_000,
            max_amount_paise=200_000,
            vpa=vpa,
        )
        assert mandate.authorisation_order_id is not None
        approved = gateway.approve_mandate(mandate.authorisation_order_id, vpa=vpa)
        do_confirm_mandate(
            uow.session,
            gateway,
            mandate=mandate,
            order_id=approved.order_id,
            payment_id=approved.payment_id,
            signature=approved.signature,
        )
        assert mandate.state == "active", mandate.state
        uow.commit()
        data.mandate_ids.append(mandate.id)


def note_vend(data: TenantData, vend: Vend) -> None:
    data.vend_ids.append(vend.id)
    data.receipt_numbers.append(vend.receipt_number)
    data.tokens.extend(t["token"] for t in vend.tokens)


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
        agent_usernames=[world.username(world.a, Role.CSC_AGENT)],
    )
    b = populate(
        db,
        world.b,
        [("Bhavesh Borkar", "9822200001")],
        key_scopes=sorted(API_KEY_SCOPES),
        label="Bravopur",
        meter_drn=2002,
        # B's user with every role is an agent too, so that the walk vends from a float of B's.
        agent_usernames=[world.username(world.b, Role.CSC_AGENT), "bravo.everything"],
    )
    return Populated(world, a, b, operator, "bravo.everything")
