"""Replacing a meter carries the customer's credit to the new meter, through the ledger."""

import pytest

from citygas.ledger.rules import AccountCode, credit, debit
from citygas.ledger.service import account_for, get_balance, post_entry
from citygas.meters.keys import meter_link_keys
from citygas.meters.link import ReadStatus, encode_request
from citygas.meters.link.endpoint import MeterLinkEndpoint
from citygas.meters.replacement import FinalReading, do_replace_meter, read_signed_status
from citygas.meters.rules import sts_meter_number
from citygas.meters.service import do_meter_transition, do_register_meter, get_meter
from citygas.platform.errors import PermissionDenied, ValidationFailed
from citygas.platform.time import utcnow
from citygas.platform.uow import Database
from citygas.sts import AcceptOutcome
from tests.meters.test_registry import MASTER, _setup
from tests.support.meters import meter_on_the_wall

FIELD = frozenset({"meter.install"})
SUPERVISOR = frozenset({"meter.install", "meter.manage"})


def _installed_pair(db: Database) -> object:
    tenant = _setup(db)
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        old = do_register_meter(
            uow.session,
            serial="OLD1",
            sts_meter_number=sts_meter_number(1),
            model_code="G1.6",
            vending_key_id="test",
        )
        new = do_register_meter(
            uow.session,
            serial="NEW1",
            sts_meter_number=sts_meter_number(2),
            model_code="G1.6",
            vending_key_id="test",
        )
        for action in ("allocate", "install", "commission", "activate"):
            do_meter_transition(
                uow.session,
                old,
                action,
                permissions=SUPERVISOR,
                customer_number="ALP-C-00000001" if action == "install" else None,
            )
        do_meter_transition(uow.session, new, "allocate", permissions=SUPERVISOR)
        customer_id = old.customer_id
        # The customer has ₹500 of paid credit in the ledger.
        post_entry(
            uow.session,
            idempotency_key="vend-1",
            reference="R1",
            kind="vend",
            lines=[
                debit(account_for(uow.session, AccountCode.GATEWAY_CLEARING).id, 50_000),
                credit(account_for(uow.session, AccountCode.CUSTOMER_CREDIT, customer_id).id, 50_000),
            ],
        )
        uow.commit()
    return tenant


def _signed_status(db: Database, tenant: object, *, credit_paise: int) -> bytes:
    """What the technician's phone uploads: the old meter's own signed status."""
    meter = meter_on_the_wall(db, tenant.id, "OLD1", start=utcnow())  # type: ignore[attr-defined]
    meter._credit = credit_paise
    reading_key, parameter_key = meter_link_keys(MASTER, tenant.id, "OLD1")  # type: ignore[attr-defined]
    return MeterLinkEndpoint(meter, reading_key, parameter_key).handle(encode_request(ReadStatus(), 1))


def test_the_credit_moves_to_the_new_meter_and_the_ledger_follows(db: Database) -> None:
    tenant = _installed_pair(db)
    frame = _signed_status(db, tenant, credit_paise=12_345)
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        old = get_meter(uow.session, "OLD1")
        reading = read_signed_status(frame, master_key=MASTER, meter=old)
        done = do_replace_meter(
            uow.session,
            old=old,
            new_serial="NEW1",
            reason="display dead",
            permissions=FIELD,
            master_key=MASTER,
            reading=reading,
        )
        uow.commit()
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:  # type: ignore[attr-defined]
        old, new = get_meter(uow.session, "OLD1"), get_meter(uow.session, "NEW1")
        held = get_balance(uow.session, AccountCode.CUSTOMER_CREDIT, new.customer_id)
        revenue = get_balance(uow.session, AccountCode.GAS_REVENUE)
        rounding = get_balance(uow.session, AccountCode.TOKEN_ROUNDING)
    assert (old.state, new.state, new.customer_id, old.replaced_by_id) == (
        "replaced",
        "active",
        old.customer_id,
        new.id,
    )
    assert (done.net_credit, done.carried) == (12_345, 12_350)  # whole tenths of a rupee, rounded up
    assert (held, revenue, rounding) == (12_350, 50_000 - 12_345, 5)
    # The token is real: the new meter accepts it and holds exactly what the ledger says.
    meter = meter_on_the_wall(db, tenant.id, "NEW1", start=utcnow())  # type: ignore[attr-defined]
    assert done.token is not None
    assert meter.enter_token(done.token).outcome is AcceptOutcome.CREDIT_ADDED
    assert meter.credit == held


def test_a_reading_signed_by_another_meter_is_refused_and_nothing_changes(db: Database) -> None:
    tenant = _installed_pair(db)
    frame = bytearray(_signed_status(db, tenant, credit_paise=99_999))
    frame[12] ^= 0x40  # the phone (or its owner) edits the credit
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        old = get_meter(uow.session, "OLD1")
        with pytest.raises(ValidationFailed, match="not a status signed by meter OLD1"):
            read_signed_status(bytes(frame), master_key=MASTER, meter=old)
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:  # type: ignore[attr-defined]
        assert get_meter(uow.session, "OLD1").state == "active"


def test_a_hand_entered_final_credit_needs_a_supervisor(db: Database) -> None:
    tenant = _installed_pair(db)
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        old = get_meter(uow.session, "OLD1")
        with pytest.raises(PermissionDenied, match="needs a supervisor"):
            do_replace_meter(
                uow.session,
                old=old,
                new_serial="NEW1",
                reason="burnt",
                permissions=FIELD,
                master_key=MASTER,
                reading=FinalReading(10_000, 0, "entered by hand"),
            )


def test_emergency_credit_owed_beyond_the_credit_becomes_debt(db: Database) -> None:
    tenant = _installed_pair(db)
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        old = get_meter(uow.session, "OLD1")
        done = do_replace_meter(
            uow.session,
            old=old,
            new_serial="NEW1",
            reason="burnt",
            permissions=SUPERVISOR,
            master_key=MASTER,
            reading=FinalReading(1_000, 5_000, "entered by hand"),
        )
        uow.commit()
        customer_id = old.customer_id
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:  # type: ignore[attr-defined]
        debt = get_balance(uow.session, AccountCode.DEBT_RECEIVABLE, customer_id)
        held = get_balance(uow.session, AccountCode.CUSTOMER_CREDIT, customer_id)
        revenue = get_balance(uow.session, AccountCode.GAS_REVENUE)
    assert (done.token, done.carried) == (None, 0)
    assert (debt, held, revenue) == (4_000, 0, 54_000)


def test_the_plain_lifecycle_action_cannot_replace(db: Database) -> None:
    tenant = _installed_pair(db)
    with (
        db.unit_of_work(tenant=tenant.id) as uow,  # type: ignore[attr-defined]
        pytest.raises(ValidationFailed, match="replacement form"),
    ):
        do_meter_transition(
            uow.session, get_meter(uow.session, "OLD1"), "replace", permissions=SUPERVISOR, reason="x"
        )
