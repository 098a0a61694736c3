"""The meter registry: vending keys kept encrypted, meters registered with checked numbers, the lifecycle
with history, TIDs allocated safely under concurrent vends."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from citygas.customers.service import do_register_customer
from citygas.meters.models import Meter, VendingKey
from citygas.meters.rules import luhn_check_digit, sts_meter_number
from citygas.meters.service import (
    STS_TEST_VENDING_KEY,
    allocate_tid,
    decoder_key_for,
    do_meter_transition,
    do_register_meter,
    get_meter,
)
from citygas.platform.audit import AuditEntry
from citygas.platform.errors import Conflict, NotFound, ValidationFailed
from citygas.platform.tenancy import TenantContextMissing
from citygas.platform.uow import Database
from citygas.platform.workflow import history
from citygas.sts import DecoderKeyParameters, derive_decoder_key_dkga04, minutes_since_base_date
from tests.conftest import make_tenant
from tests.support.meters import MASTER, add_g16_and_test_key

EVERYTHING = frozenset({"meter.manage", "meter.install"})


def _setup(db: Database) -> object:
    tenant = make_tenant(db, "alpha", "ALP")
    with db.unit_of_work(tenant=tenant.id) as uow:
        add_g16_and_test_key(uow.session)
        do_register_customer(
            uow.session, name="Asha Rao", phone="9812345678", charge_area_code="ALP-CA1", address="1 A St"
        )
        do_register_customer(
            uow.session, name="Bina Das", phone="9812345679", charge_area_code="ALP-CA1", address="2 A St"
        )
        uow.commit()
    return tenant


def _register(db: Database, tenant: object, drn: int = 1, serial: str = "SN0001") -> Meter:
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        meter = do_register_meter(
            uow.session,
            serial=serial,
            sts_meter_number=sts_meter_number(drn),
            model_code="G1.6",
            vending_key_id="test",
        )
        uow.commit()
    return meter


def test_meter_numbers_carry_a_luhn_check_digit() -> None:
    assert sts_meter_number(0) == "600727000000000009"  # the published STS test meter
    assert luhn_check_digit("7992739871") == "3"  # the textbook Luhn example


def test_a_vending_key_is_stored_encrypted_and_never_audited_in_clear(db: Database) -> None:
    tenant = _setup(db)
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:  # type: ignore[attr-defined]
        row = uow.session.execute(select(VendingKey)).scalar_one()
        audit_after = uow.session.execute(
            select(AuditEntry.after).where(AuditEntry.action == "vending_key.create")
        ).scalar_one()
    assert STS_TEST_VENDING_KEY.hex() not in str(row.vault_blob)
    assert audit_after["vault_blob"] == "[redacted]"


def test_the_decoder_key_is_derived_from_the_stored_vending_key(db: Database) -> None:
    tenant = _setup(db)
    meter = _register(db, tenant, drn=0)
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:  # type: ignore[attr-defined]
        key = decoder_key_for(uow.session, uow.session.merge(meter), master_key=MASTER)
    expected = derive_decoder_key_dkga04(
        STS_TEST_VENDING_KEY,
        DecoderKeyParameters(pan="600727000000000009", sgc="123457", ti=1, kt=2, krn=1, base_date=2014),
    )
    assert key == expected


def test_a_registered_meter_starts_in_store_with_history(db: Database) -> None:
    tenant = _setup(db)
    meter = _register(db, tenant)
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:  # type: ignore[attr-defined]
        rows = history(uow.session, "meter", meter.id)
    assert meter.state == "in_store"
    assert [(r.action, r.to_state) for r in rows] == [("start", "in_store")]


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("600727000000000008", "valid check digit"),
        ("60072700000000009", "valid check digit"),
        ("60072700000000000X", "valid check digit"),
    ],
)
def test_a_meter_number_with_a_bad_check_digit_is_refused(db: Database, number: str, message: str) -> None:
    tenant = _setup(db)
    with db.unit_of_work(tenant=tenant.id) as uow, pytest.raises(ValidationFailed, match=message):  # type: ignore[attr-defined]
        do_register_meter(
            uow.session, serial="SNX", sts_meter_number=number, model_code="G1.6", vending_key_id="test"
        )
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:  # type: ignore[attr-defined]
        assert uow.session.execute(select(func.count()).select_from(Meter)).scalar_one() == 0


def test_a_duplicate_serial_is_refused(db: Database) -> None:
    tenant = _setup(db)
    _register(db, tenant, drn=1, serial="SN1")
    with db.unit_of_work(tenant=tenant.id) as uow, pytest.raises(ValidationFailed, match="exists already"):  # type: ignore[attr-defined]
        do_register_meter(
            uow.session,
            serial="sn1",
            sts_meter_number=sts_meter_number(2),
            model_code="G1.6",
            vending_key_id="test",
        )


def test_the_lifecycle_installs_a_meter_at_a_customer_and_activates_it(db: Database) -> None:
    tenant = _setup(db)
    meter = _register(db, tenant)
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        m = get_meter(uow.session, "SN0001")
        for action in ("allocate", "install", "commission", "activate"):
            do_meter_transition(
                uow.session,
                m,
                action,
                permissions=EVERYTHING,
                customer_number="ALP-C-00000001" if action == "install" else None,
            )
        uow.commit()
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:  # type: ignore[attr-defined]
        m = get_meter(uow.session, "SN0001")
        steps = [(r.from_state, r.to_state) for r in history(uow.session, "meter", meter.id)]
    assert m.state == "active"
    assert m.customer_id is not None
    assert steps == [
        (None, "in_store"),
        ("in_store", "allocated"),
        ("allocated", "installed"),
        ("installed", "commissioned"),
        ("commissioned", "active"),
    ]


def test_a_customer_cannot_have_two_live_meters(db: Database) -> None:
    tenant = _setup(db)
    _register(db, tenant, drn=1, serial="SN1")
    _register(db, tenant, drn=2, serial="SN2")
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        for serial in ("SN1", "SN2"):
            do_meter_transition(
                uow.session, get_meter(uow.session, serial), "allocate", permissions=EVERYTHING
            )
        do_meter_transition(
            uow.session,
            get_meter(uow.session, "SN1"),
            "install",
            permissions=EVERYTHING,
            customer_number="ALP-C-00000001",
        )
        with pytest.raises(Conflict, match="already has meter SN1"):
            do_meter_transition(
                uow.session,
                get_meter(uow.session, "SN2"),
                "install",
                permissions=EVERYTHING,
                customer_number="ALP-C-00000001",
            )


def test_suspending_needs_a_reason_and_the_right_permission(db: Database) -> None:
    tenant = _setup(db)
    _register(db, tenant)
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        m = get_meter(uow.session, "SN0001")
        for action in ("allocate", "install", "commission", "activate"):
            do_meter_transition(
                uow.session,
                m,
                action,
                permissions=EVERYTHING,
                customer_number="ALP-C-00000001" if action == "install" else None,
            )
        with pytest.raises(ValidationFailed, match="needs a reason"):
            do_meter_transition(uow.session, m, "suspend", permissions=EVERYTHING)
        with pytest.raises(Exception, match="may not suspend"):
            do_meter_transition(
                uow.session, m, "suspend", permissions=frozenset({"meter.install"}), reason="x"
            )
        assert m.state == "active"


def test_tids_count_minutes_and_never_repeat_within_a_minute(db: Database) -> None:
    tenant = _setup(db)
    meter = _register(db, tenant)
    now = datetime(2026, 12, 4, 10, 30, 15, tzinfo=UTC)
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        m = uow.session.merge(meter)
        tids = [allocate_tid(uow.session, m, now=now) for _ in range(3)]
        later = allocate_tid(uow.session, m, now=now + timedelta(minutes=10))
        uow.commit()
    minute = minutes_since_base_date(now, 2014)
    assert tids == [minute, minute + 1, minute + 2]
    assert later == minute + 10


def test_a_tid_is_never_taken_from_another_tenants_meter(db: Database) -> None:
    tenant = _setup(db)
    meter = _register(db, tenant)
    other = make_tenant(db, "beta", "BET")
    with db.unit_of_work(tenant=other.id) as uow:  # the row handed over from outside the wall
        with pytest.raises(NotFound):
            allocate_tid(
                uow.session, uow.session.merge(meter, load=False), now=datetime(2026, 12, 4, tzinfo=UTC)
            )
        uow.commit()
    with db.system(read_only=True) as uow:
        assert uow.session.get(Meter, meter.id).last_tid is None  # type: ignore[union-attr]
    with db.write_sessions() as session, pytest.raises(TenantContextMissing):  # no tenant: fails closed
        allocate_tid(session, session.merge(meter, load=False), now=datetime(2026, 12, 4, tzinfo=UTC))


def test_a_tid_past_the_key_expiry_is_refused(db: Database) -> None:
    tenant = _setup(db)
    meter = _register(db, tenant)
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        m = uow.session.merge(meter)
        m.ken = 0
        uow.session.flush()
        with pytest.raises(Conflict, match="past the key's expiry"):
            allocate_tid(uow.session, m, now=datetime(2026, 12, 4, tzinfo=UTC))


@pytest.mark.slow
def test_concurrent_vends_to_one_meter_never_share_a_tid(db: Database) -> None:
    tenant = _setup(db)
    meter = _register(db, tenant)
    now = datetime(2026, 12, 4, 10, 30, tzinfo=UTC)
    got: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def vend() -> None:
        try:
            barrier.wait()
            for _ in range(20):
                with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
                    m = uow.session.get(Meter, meter.id)
                    assert m is not None
                    tid = allocate_tid(uow.session, m, now=now)
                    uow.commit()
                with lock:
                    got.append(tid)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=vend) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    minute = minutes_since_base_date(now, 2014)
    assert sorted(got) == list(range(minute, minute + 80))
