"""Fixtures of the metering tests: CGDs with households, simulated meters keyed from the registry (as the
simulator keys them), a gas rate in force, and helpers that read signed frames from a meter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.conftest import TEST_ACTOR, csrf_from, make_tenant
from tests.support.meters import MASTER, add_g16_and_test_key

from citygas.customers.models import Customer
from citygas.customers.service import do_register_customer
from citygas.identity.service import open_web_session
from citygas.metering import pages as metering_pages
from citygas.metering.demo import read_signed_frames
from citygas.metering.service import UploadResult, do_upload_readings
from citygas.meters.keys import meter_link_keys
from citygas.meters.link import MeterLinkEndpoint
from citygas.meters.models import Meter
from citygas.meters.rules import sts_meter_number
from citygas.meters.service import (
    do_meter_transition,
    do_register_meter,
)
from citygas.meters.sim_pages import runtime_for
from citygas.meters.simulator import MeterRuntime, SimulatorHub
from citygas.platform.settings import Settings
from citygas.platform.tenancy import ChargeArea, Tenant
from citygas.platform.uow import Database
from citygas.tariffs.rules import TaxKind
from citygas.tariffs.service import do_set_gas_rate, do_set_tax_rate
from citygas.vending.rules import Channel, VendRequest
from citygas.vending.service import VendOutcome, do_vend
from citygas.web.app import create_app
from citygas.web.deps import SESSION_COOKIE

RATE = 4_850  # paise per SCM before VAT
RATES_FROM = datetime(2024, 1, 1, tzinfo=UTC)  # in force for every moment a test uses
T0 = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
EVERYTHING = frozenset({"meter.manage", "meter.install"})


@dataclass
class Household:
    customer_id: uuid.UUID
    consumer_number: str
    phone: str
    serial: str | None


@dataclass
class Cgd:
    tenant: Tenant
    households: list[Household] = field(default_factory=list)

    def household(self, consumer_number: str) -> Household:
        return next(h for h in self.households if h.consumer_number == consumer_number)


def make_cgd(
    db: Database,
    slug: str,
    code: str,
    households: list[tuple[str, str, bool]],
    *,
    mode: str = "currency",
) -> Cgd:
    """A CGD with a gas rate and VAT in force since 2024, and households (name, phone, has a meter): each
    meter an active simulated G1.6 keyed with the STS test key, serial `<code>M0000001`, ..."""
    tenant = make_tenant(db, slug, code)
    cgd = Cgd(tenant)
    with db.unit_of_work(tenant=tenant.id, actor=TEST_ACTOR) as uow:
        s = uow.session
        add_g16_and_test_key(s, mode=mode)
        do_set_tax_rate(
            s,
            tax=TaxKind.VAT,
            region="Maharashtra",
            percent=Decimal("3"),
            effective_from=RATES_FROM,
            now=RATES_FROM,
        )
        for area in s.execute(select(ChargeArea)).scalars():
            do_set_gas_rate(
                s, charge_area_id=area.id, rate_paise_per_scm=RATE, effective_from=RATES_FROM, now=RATES_FROM
            )
        for n, (name, phone, has_meter) in enumerate(households, start=1):
            customer = do_register_customer(
                s, name=name, phone=phone, charge_area_code=f"{code}-CA1", address=f"{n} Main Road"
            )
            serial = None
            if has_meter:
                serial = f"{code}M{n:07d}"
                meter = do_register_meter(
                    s,
                    serial=serial,
                    sts_meter_number=sts_meter_number(n),
                    model_code="G1.6",
                    vending_key_id="test",
                    simulated=True,
                )
                for action in ("allocate", "install", "commission", "activate"):
                    do_meter_transition(
                        s,
                        meter,
                        action,
                        permissions=EVERYTHING,
                        customer_number=customer.consumer_number if action == "install" else None,
                    )
            cgd.households.append(Household(customer.id, customer.consumer_number, customer.phone, serial))
        uow.commit()
    return cgd


@pytest.fixture
def alpha(db: Database) -> Cgd:
    """Alpha Gas: Asha with one meter; Bina and her second flat (same phone), both with meters; Chetan whose
    meter is not installed yet."""
    return make_cgd(
        db,
        "alpha",
        "ALP",
        [
            ("Asha Rao", "9812345678", True),
            ("Bina Das", "9812345679", True),
            ("Bina Das (flat 2)", "9812345679", True),
            ("Chetan Shah", "9812345680", False),
        ],
    )


@pytest.fixture
def bravo(db: Database) -> Cgd:
    return make_cgd(db, "bravo", "BRV", [("Dev Patil", "9822222222", True)])


def get_meter(db: Database, cgd: Cgd, serial: str) -> Meter:
    with db.unit_of_work(tenant=cgd.tenant.id, read_only=True) as uow:
        return uow.session.execute(select(Meter).where(Meter.serial == serial)).scalar_one()


def live_meter(db: Database, cgd: Cgd, serial: str, *, at: datetime = T0) -> MeterRuntime:
    """The simulated meter on the household's wall, made as the simulator makes it (in memory), at `at`."""
    hub = SimulatorHub(None, master_key=MASTER, now=lambda: at)
    with db.unit_of_work(tenant=cgd.tenant.id, read_only=True) as uow:
        meter = uow.session.execute(select(Meter).where(Meter.serial == serial)).scalar_one()
        return runtime_for(hub, uow.session, meter)


def endpoint_of(cgd: Cgd, runtime: MeterRuntime) -> MeterLinkEndpoint:
    serial = runtime.meter.identity().serial
    reading_key, parameter_key = meter_link_keys(MASTER, cgd.tenant.id, serial)
    return MeterLinkEndpoint(runtime.meter, reading_key, parameter_key)


def frames_of(cgd: Cgd, runtime: MeterRuntime, *, after_seq: int = 0) -> list[bytes]:
    return read_signed_frames(endpoint_of(cgd, runtime), after_seq=after_seq)


def upload(
    db: Database, cgd: Cgd, serial: str, frames: list[bytes], *, now: datetime = T0, source: str = "customer"
) -> UploadResult:
    with db.unit_of_work(tenant=cgd.tenant.id, actor=TEST_ACTOR) as uow:
        meter = uow.session.execute(select(Meter).where(Meter.serial == serial)).scalar_one()
        result = do_upload_readings(
            uow.session,
            meter=meter,
            frames=frames,
            master_key=MASTER,
            source=source,
            uploaded_by="test",
            now=now,
        )
        uow.commit()
        return result


def vend(
    db: Database, cgd: Cgd, consumer_number: str, amount_paise: int, *, key: str, now: datetime = T0
) -> VendOutcome:
    with db.unit_of_work(tenant=cgd.tenant.id, actor=TEST_ACTOR) as uow:
        outcome = do_vend(
            uow.session,
            VendRequest(
                channel=Channel.B2B,
                amount_paise=amount_paise,
                idempotency_key=key,
                consumer_number=consumer_number,
                payment_reference=key,
            ),
            master_key=MASTER,
            now=now,
        )
        uow.commit()
        return outcome


def add_metering_routes(client: TestClient) -> None:
    """Until the app wires the metering router, include it."""
    app = client.app
    paths = {getattr(r, "path", "") for r in app.routes}  # type: ignore[attr-defined]
    if "/app/meter" not in paths:
        app.include_router(metering_pages.router)  # type: ignore[attr-defined]


@pytest.fixture
def client(db: Database, settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, db=db, run_worker=False)
    with TestClient(app, base_url="http://testserver") as test_client:
        add_metering_routes(test_client)
        yield test_client


def log_in_household(client: TestClient, db: Database, cgd: Cgd, consumer_number: str) -> str:
    """Open a household session for the connection's phone (as a verified OTP does); return its CSRF token."""
    with db.unit_of_work(tenant=cgd.tenant.id, read_only=True) as uow:
        customer = uow.session.execute(
            select(Customer).where(Customer.consumer_number == consumer_number)
        ).scalar_one()
    with db.system() as uow:
        token = open_web_session(
            uow.session, kind="customer", tenant_id=cgd.tenant.id, customer_id=customer.id
        )
        uow.commit()
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, token)
    return csrf_from(client.get("/app/meter").text)
