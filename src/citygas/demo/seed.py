"""`citygas demo seed`: a realistic demo operator with two CGDs. Idempotent with `--if-empty`."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select

from citygas.care.service import do_raise_ticket
from citygas.customers.models import Customer
from citygas.customers.service import do_register_customer
from citygas.identity.rules import ROLE_LABELS, Permission, Role
from citygas.identity.service import do_create_staff_user
from citygas.metering.demo import seed_meter_history
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
from citygas.payments.csc.service import do_approve_float_topup, do_create_agent, do_request_float_topup
from citygas.payments.gateway.service import gateway_for
from citygas.payments.gateway.simulator import GatewaySimulator
from citygas.platform.context import Actor
from citygas.platform.settings import get_settings
from citygas.platform.tenancy import ChargeArea, GeographicalArea, Tenant
from citygas.platform.time import utcnow
from citygas.platform.uow import Database
from citygas.tariffs.rules import GST_REGION, TaxKind, percent_commission
from citygas.tariffs.service import do_set_gas_rate, do_set_tax_rate

SEED_ACTOR = Actor(kind="system", id=None, label="demo seed")


@dataclass(frozen=True)
class DemoLogin:
    tenant: str
    role: str
    username: str
    password: str
    home: str


@dataclass(frozen=True)
class DemoCgd:
    slug: str
    code: str
    name: str
    state: str
    helpline: str
    areas: dict[tuple[str, str, str], list[tuple[str, str, str]]]  # (GA code, name, state) → charge areas


CGDS = [
    DemoCgd(
        "demogas",
        "DGN",
        "Demo Gas Nagar Ltd",
        "Maharashtra",
        "1800-200-1906",
        {
            ("PUN", "Pune GA", "Maharashtra"): [
                ("PUN-KTH", "Kothrud", "411038"),
                ("PUN-HDP", "Hadapsar", "411028"),
            ],
            ("STR", "Satara GA", "Maharashtra"): [("STR-CTY", "Satara city", "415001")],
        },
    ),
    DemoCgd(
        "sahyadri",
        "SCG",
        "Sahyadri City Gas Pvt Ltd",
        "Karnataka",
        "1800-425-1906",
        {
            ("BGM", "Belagavi GA", "Karnataka"): [
                ("BGM-TLK", "Tilakwadi", "590006"),
                ("BGM-SHP", "Shahapur", "590003"),
            ],
        },
    ),
]

FIRST = [
    "Aarti",
    "Rohan",
    "Sunita",
    "Imran",
    "Meera",
    "Vikram",
    "Lakshmi",
    "Arjun",
    "Fatima",
    "Suresh",
    "Kavita",
    "Deepak",
    "Anjali",
    "Ravi",
    "Pooja",
    "Mahesh",
]
LAST = [
    "Kulkarni",
    "Patil",
    "Deshpande",
    "Shaikh",
    "Joshi",
    "Naik",
    "Kamat",
    "Gowda",
    "Pawar",
    "Iyer",
    "Jadhav",
    "More",
    "Hegde",
    "Kadam",
]
STREETS = ["Paud Road", "Karve Nagar", "Magarpatta", "Sadashiv Peth", "Congress Road", "Khade Bazar"]

HOMES = {
    Role.OPERATOR_ADMIN: "/ops/admin/tenants",
    Role.CGD_MANAGER: "/cgd/",
    Role.CGD_VIEWER: "/cgd/",
    Role.BACK_OFFICE: "/ops/",
    Role.STORE_KEEPER: "/ops/",
    Role.FIELD_SUPERVISOR: "/ops/",
    Role.TECHNICIAN: "/field/",
    Role.METER_READER: "/field/",
    Role.CARE_AGENT: "/ops/",
    Role.CSC_AGENT: "/agent/",
}

CUSTOMERS_PER_CGD = 24


def demo_password(role: Role) -> str:
    return f"{role.value.replace('_', '-')}-demo"


def is_seeded(db: Database) -> bool:
    with db.system(read_only=True) as uow:
        return bool(uow.session.execute(select(func.count()).select_from(Tenant)).scalar_one())


def seed(db: Database) -> list[DemoLogin]:
    rng = random.Random(1906)  # noqa: S311 - deterministic demo data, not security
    logins: list[DemoLogin] = []
    operator = _tenant(
        db, "operator", "OPS", "citygas Operations (service provider)", "", "", kind="operator"
    )
    logins.append(_user(db, operator, "admin", "Operator Admin", Role.OPERATOR_ADMIN, "Operator"))
    for cgd in CGDS:
        tenant = _tenant(db, cgd.slug, cgd.code, cgd.name, cgd.state, cgd.helpline)
        _areas(db, tenant, cgd)
        _tariffs(db, tenant, cgd)
        for role in Role:
            if role is Role.OPERATOR_ADMIN:
                continue
            username = f"{cgd.code.lower()}.{role.value}"
            logins.append(_user(db, tenant, username, f"{ROLE_LABELS[role]} ({cgd.code})", role, cgd.name))
        _customers(db, tenant, cgd, rng)
        _meters(db, tenant, cgd)
        _agent(db, tenant, cgd)
    settings = get_settings()
    # Ninety days of cooking on every demo meter, and a last sync the app can show on first log-in.
    seed_meter_history(
        db,
        state_dir=settings.simulator_state_dir if settings.simulator_enabled else None,
        master_key=settings.master_key_bytes,
    )
    for cgd in CGDS:
        tenant = _tenant_by_code(db, cgd.code)
        _tickets(db, tenant)
        if settings.simulator_enabled:
            _autopay(db, tenant, master_key=settings.master_key_bytes)
    return logins


def _tenant_by_code(db: Database, code: str) -> Tenant:
    with db.system(read_only=True) as system:
        return system.session.execute(select(Tenant).where(Tenant.code == code)).scalar_one()


def _customer_number(db: Database, tenant: Tenant, n: int) -> Customer:
    with db.unit_of_work(tenant=tenant.id, actor=SEED_ACTOR, read_only=True) as uow:
        customers = uow.session.execute(select(Customer).order_by(Customer.consumer_number)).scalars().all()
        return customers[n - 1]


def _tickets(db: Database, tenant: Tenant) -> None:
    """Two complaints in the care centre's queue, raised by households from the app."""
    for n, category, text in (
        (5, "payment_no_token", "Paid Rs 500 by UPI at 09:10, no token came"),
        (6, "meter_problem", "Meter display is blank since yesterday evening"),
    ):
        customer = _customer_number(db, tenant, n)
        actor = Actor(kind="customer", id=customer.id, label=customer.name)
        with db.unit_of_work(tenant=tenant.id, actor=actor) as uow:
            own = uow.session.get(Customer, customer.id)
            assert own is not None
            do_raise_ticket(uow.session, customer=own, category_code=category, description=text)
            uow.because("demo seed").commit()


AUTOPAY_HOUSEHOLD = 20  # an active meter (21–24 are waiting for a meter, or faulty)


def _autopay(db: Database, tenant: Tenant, *, master_key: bytes) -> None:
    """One household with UPI AutoPay: ₹500 whenever its balance drops below ₹150, approved in the
    (simulated) UPI app."""
    customer = _customer_number(db, tenant, AUTOPAY_HOUSEHOLD)
    actor = Actor(kind="customer", id=customer.id, label=customer.name)
    with db.unit_of_work(tenant=tenant.id, actor=actor) as uow:
        gateway = gateway_for(uow.session, master_key=master_key, simulator_enabled=True)
        own = uow.session.get(Customer, customer.id)
        assert own is not None
        mandate = do_start_mandate(
            uow.session,
            gateway,
            customer=own,
            threshold_paise=15_000,
            amount_paise=50_000,
            max_amount_paise=200_000,
            vpa="household@upi",
        )
        assert isinstance(gateway, GatewaySimulator)
        approved = gateway.approve_mandate(mandate.authorisation_order_id, vpa="household@upi")
        do_confirm_mandate(
            uow.session,
            gateway,
            mandate=mandate,
            order_id=approved.order_id,
            payment_id=approved.payment_id,
            signature=approved.signature,
        )
        uow.because("demo seed").commit()


def _tenant(
    db: Database, slug: str, code: str, name: str, state: str, helpline: str, *, kind: str = "cgd"
) -> Tenant:
    with db.unit_of_work(tenant="system", actor=SEED_ACTOR) as uow:
        tenant = Tenant(slug=slug, code=code, name=name, kind=kind, state=state, helpline=helpline)
        uow.session.add(tenant)
        uow.because("demo seed").commit()
        return tenant


def _areas(db: Database, tenant: Tenant, cgd: DemoCgd) -> None:
    with db.unit_of_work(tenant=tenant.id, actor=SEED_ACTOR) as uow:
        for (code, name, state), charge_areas in cgd.areas.items():
            ga = GeographicalArea(code=code, name=name, state=state, authorised_round="9")
            uow.session.add(ga)
            uow.session.flush()
            for ca_code, ca_name, pin in charge_areas:
                uow.session.add(ChargeArea(ga_id=ga.id, code=ca_code, name=ca_name, pincode=pin))
        uow.because("demo seed").commit()


def _user(
    db: Database, tenant: Tenant, username: str, full_name: str, role: Role, tenant_label: str
) -> DemoLogin:
    password = demo_password(role)
    with db.unit_of_work(tenant=tenant.id, actor=SEED_ACTOR) as uow:
        do_create_staff_user(
            uow.session, username=username, full_name=full_name, password=password, roles=[role.value]
        )
        uow.because("demo seed").commit()
    return DemoLogin(tenant_label, ROLE_LABELS[role], username, password, HOMES[role])


def demo_phone(cgd_index: int, n: int) -> str:
    return f"9{cgd_index}{n:08d}"[:10]


def _customers(db: Database, tenant: Tenant, cgd: DemoCgd, rng: random.Random) -> None:
    charge_areas = [ca for cas in cgd.areas.values() for ca in cas]
    cgd_index = CGDS.index(cgd) + 8
    with db.unit_of_work(tenant=tenant.id, actor=SEED_ACTOR) as uow:
        for n in range(1, CUSTOMERS_PER_CGD + 1):
            ca_code, ca_name, _pin = charge_areas[n % len(charge_areas)]
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            flat = f"Flat {rng.randint(1, 20)}{rng.choice('ABCD')}-{rng.randint(101, 904)}"
            address = f"{flat}, {rng.choice(STREETS)}, {ca_name}"
            # The second connection belongs to the first household (a family with two flats), so the
            # demo shows one login with several connections.
            phone = demo_phone(cgd_index, 1 if n == 2 else n)
            do_register_customer(
                uow.session,
                name=name,
                phone=phone,
                charge_area_code=ca_code,
                address=address,
            )
        uow.because("demo seed").commit()


def customer_logins() -> list[tuple[str, str]]:
    return [(cgd.name, demo_phone(CGDS.index(cgd) + 8, 1)) for cgd in CGDS]


SPARE_METERS = 6
ALL_PERMISSIONS = frozenset(p.value for p in Permission)


def _meters(db: Database, tenant: Tenant, cgd: DemoCgd) -> None:
    """Currency-mode meters for the first CGD, volume-mode for the second; each household's meter is a
    simulated meter keyed with the published STS test vending key, so anyone can check its tokens."""
    currency = CGDS.index(cgd) == 0
    settings = get_settings()
    with db.unit_of_work(tenant=tenant.id, actor=SEED_ACTOR) as uow:
        s = uow.session
        s.add(
            MeterModel(
                code="G1.6-BLE",
                name="G1.6 prepaid gas meter with Bluetooth",
                manufacturer="Demo Meters Ltd",
                manufacturer_code=96,
                qmax_litres_per_hour=2500,
                mode="currency" if currency else "volume",
                credit_subclass=6 if currency else 2,
                base_units_per_count=10 if currency else 100,
                token_classes=[0, 1, 2],
            )
        )
        do_store_vending_key(
            s,
            master_key=settings.master_key_bytes,
            key_id="sts-test-dkga04",
            label="STS conformance TEST key (published; demo only)",
            vending_key=STS_TEST_VENDING_KEY,
            sgc=STS_TEST_SGC,
            is_test_key=True,
        )
        customers = s.execute(select(Customer).order_by(Customer.consumer_number)).scalars().all()
        base = (CGDS.index(cgd) + 1) * 1_000_000
        steps = {
            "active": ["allocate", "install", "commission", "activate"],
            "installed": ["allocate", "install"],
            "faulty": ["allocate", "install", "commission", "activate", "report_fault"],
        }
        for n, customer in enumerate(customers, start=1):
            if n == len(customers):
                break  # the last household is still waiting for its meter
            target = "installed" if n in (21, 22) else "faulty" if n == 23 else "active"
            meter = do_register_meter(
                s,
                serial=f"{cgd.code}{base + n:08d}",
                sts_meter_number=sts_meter_number(base + n),
                model_code="G1.6-BLE",
                vending_key_id="sts-test-dkga04",
                simulated=True,
            )
            for action in steps[target]:
                do_meter_transition(
                    s,
                    meter,
                    action,
                    permissions=ALL_PERMISSIONS,
                    customer_number=customer.consumer_number if action == "install" else None,
                    reason="display blank after rain" if action == "report_fault" else None,
                )
        for n in range(1, SPARE_METERS + 3):
            meter = do_register_meter(
                s,
                serial=f"{cgd.code}{base + 900 + n:08d}",
                sts_meter_number=sts_meter_number(base + 900 + n),
                model_code="G1.6-BLE",
                vending_key_id="sts-test-dkga04",
                simulated=True,
            )
            if n > SPARE_METERS:
                do_meter_transition(s, meter, "allocate", permissions=ALL_PERMISSIONS)
        uow.because("demo seed").commit()


# Demo prices, not any CGD's published tariff: gas before VAT per SCM, and VAT on gas by state.
DEMO_RATES_PAISE = {"DGN": 4_850, "SCG": 5_200}
DEMO_VAT_PERCENT = {"Maharashtra": Decimal("3"), "Karnataka": Decimal("5")}


def _tariffs(db: Database, tenant: Tenant, cgd: DemoCgd) -> None:
    now = utcnow()
    with db.unit_of_work(tenant=tenant.id, actor=SEED_ACTOR) as uow:
        s = uow.session
        do_set_tax_rate(
            s,
            tax=TaxKind.VAT,
            region=cgd.state,
            percent=DEMO_VAT_PERCENT[cgd.state],
            effective_from=now,
            now=now,
        )
        do_set_tax_rate(
            s, tax=TaxKind.GST, region=GST_REGION, percent=Decimal("18"), effective_from=now, now=now
        )
        for area in s.execute(select(ChargeArea)).scalars():
            do_set_gas_rate(
                s,
                charge_area_id=area.id,
                rate_paise_per_scm=DEMO_RATES_PAISE[cgd.code],
                effective_from=now,
                note="demo tariff",
                now=now,
            )
        uow.because("demo seed").commit()


def _agent(db: Database, tenant: Tenant, cgd: DemoCgd) -> None:
    """The CGD's demo CSC agent: a profile at a village kiosk, 1 % commission capped at ₹20, and a float of
    ₹10,000 paid to the CGD's bank and approved by the back office — so the agent portal can vend at once."""
    with db.unit_of_work(tenant=tenant.id, actor=SEED_ACTOR) as uow:
        s = uow.session
        agent = do_create_agent(
            s,
            username=f"{cgd.code.lower()}.csc_agent",
            csc_id=f"CSC-{cgd.code}-0001",
            village="Wagholi" if cgd.code == "DGN" else "Hindalga",
            rule=percent_commission(Decimal("1"), cap_paise=2_000),
        )
        topup = do_request_float_topup(
            s,
            agent,
            amount_paise=1_000_000,
            reference=f"UTR{cgd.code}0000001",
            requested_by="demo seed",
            note="opening float",
        )
        do_approve_float_topup(s, topup, permissions=ALL_PERMISSIONS, reason="matched on the bank statement")
        uow.because("demo seed").commit()
