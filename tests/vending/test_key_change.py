"""Key changes ride ahead of a vend: the key change set first, then tariff and credit under the new key."""

from datetime import UTC, datetime

from citygas.meters.model import SimulatedMeter
from citygas.meters.rules import sts_meter_number
from citygas.meters.service import (
    do_meter_transition,
    do_register_meter,
    do_schedule_key_change,
    get_meter,
)
from citygas.platform.uow import Database
from citygas.sts import AcceptOutcome
from citygas.vending.rules import Channel, VendRequest
from citygas.vending.service import do_vend
from tests.meters.test_registry import MASTER
from tests.support.meters import meter_on_the_wall
from tests.vending.conftest import START, Shop

ALL = frozenset({"meter.manage", "meter.install"})


def _vend(db: Database, shop: Shop, key: str, now: datetime = START) -> list[dict[str, object]]:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        outcome = do_vend(
            uow.session,
            VendRequest(
                channel=Channel.ONLINE,
                amount_paise=50_000,
                idempotency_key=key,
                consumer_number="ALP-C-00000002",
            ),
            master_key=MASTER,
            now=now,
        )
        uow.commit()
        return outcome.vend.tokens


def _meter_on_the_wall(db: Database, shop: Shop, serial: str, base_date: int) -> SimulatedMeter:
    return meter_on_the_wall(db, shop.tenant.id, serial, start=START, base_date=base_date)


def _install(db: Database, shop: Shop, serial: str, base_date: int) -> None:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        meter = do_register_meter(
            uow.session,
            serial=serial,
            sts_meter_number=sts_meter_number(77),
            model_code="G1.6",
            vending_key_id="test",
            base_date=base_date,
        )
        for action in ("allocate", "install", "commission", "activate"):
            do_meter_transition(
                uow.session,
                meter,
                action,
                permissions=ALL,
                customer_number="ALP-C-00000002" if action == "install" else None,
            )
        uow.commit()


def test_a_scheduled_key_change_goes_first_and_the_meter_takes_all_tokens(db: Database, shop: Shop) -> None:
    _install(db, shop, "KC1", 2014)
    wall = _meter_on_the_wall(db, shop, "KC1", 2014)
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        do_schedule_key_change(uow.session, get_meter(uow.session, "KC1"), new_krn=2)
        uow.commit()
    tokens = _vend(db, shop, "kc-1")
    assert [t["kind"] for t in tokens] == ["key_change"] * 4 + ["set_tariff_rate", "credit"]
    outcomes = [wall.enter_token(str(t["token"])).outcome for t in tokens]
    assert outcomes[3] is AcceptOutcome.KEY_CHANGED
    assert outcomes[4:] == [AcceptOutcome.MANAGEMENT_APPLIED, AcceptOutcome.CREDIT_ADDED]
    assert wall.credit == 48_550
    with db.unit_of_work(tenant=shop.tenant.id, read_only=True) as uow:
        meter = get_meter(uow.session, "KC1")
        assert (meter.krn, meter.key_change_pending) == (2, False)
    assert [t["kind"] for t in _vend(db, shop, "kc-2", START.replace(hour=7))] == ["credit"]


def test_the_2024_rollover_moves_a_1993_meter_to_2014_and_it_vends_again(db: Database, shop: Shop) -> None:
    # A meter keyed for 1993 ran out of TIDs in November 2024 (2^24 minutes): nothing can be vended to it
    # until its rollover key change moves it to the 2014 base date with a new key.
    _install(db, shop, "RO1", 1993)
    wall = _meter_on_the_wall(db, shop, "RO1", 1993)
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        do_schedule_key_change(uow.session, get_meter(uow.session, "RO1"), new_krn=2, rollover=True)
        uow.commit()
    tokens = _vend(db, shop, "ro-1")
    outcomes = [wall.enter_token(str(t["token"])).outcome for t in tokens]
    assert AcceptOutcome.KEY_CHANGED in outcomes
    assert outcomes[-1] is AcceptOutcome.CREDIT_ADDED
    assert wall.credit == 48_550
    with db.unit_of_work(tenant=shop.tenant.id, read_only=True) as uow:
        meter = get_meter(uow.session, "RO1")
        assert (meter.base_date, meter.krn) == (2014, 2)
        assert meter.last_tid is not None
        assert meter.last_tid < 7_000_000  # minutes since 2014, not 1993
    assert datetime(2024, 11, 1, tzinfo=UTC)  # the month 1993-based TIDs ran out
