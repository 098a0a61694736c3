"""Tariff change notices: when a new gas price takes effect, the households of its charge area with a
currency-mode meter get one SMS in their language; others get none; a re-run texts nobody twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from citygas.customers.models import Customer
from citygas.platform import time as clock
from citygas.platform.outbox import OutboxEvent, OutboxRelay, emit
from citygas.platform.tenancy import ChargeArea
from citygas.platform.uow import Database
from citygas.tariffs import tasks  # noqa: F401 - registers the handlers the relay runs
from citygas.tariffs.models import GasTariff, TariffNotice
from citygas.tariffs.notices import NOTICE_TOPIC, do_send_notice_batch, notice_text
from citygas.tariffs.service import do_set_gas_rate
from tests.vending.conftest import START, Shop, shop

__all__ = ["shop"]

NEW_RATE = 5_200  # paise per SCM before VAT; 3 % VAT → ₹53.56


@pytest.fixture
def area_shop(shop: Shop) -> Iterator[Shop]:
    clock.freeze(START)
    yield shop
    clock.freeze(None)


def relay_all(db: Database) -> None:
    relay = OutboxRelay(db.write_sessions)
    while relay.relay_once():
        pass


def sms_to(db: Database, phone: str) -> list[str]:
    with db.system(read_only=True) as uow:
        rows = uow.session.execute(
            select(OutboxEvent).where(OutboxEvent.topic == "notification.requested").order_by(OutboxEvent.id)
        ).scalars()
        return [str(r.payload["text"]) for r in rows if r.payload["to"] == phone]


def schedule(db: Database, shop: Shop, *, rate: int = NEW_RATE, days: int = 1) -> GasTariff:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        area = uow.session.execute(select(ChargeArea)).scalars().first()
        assert area is not None
        asha = uow.session.execute(
            select(Customer).where(Customer.consumer_number == shop.consumer_number)
        ).scalar_one()
        asha.language = "hi"
        tariff = do_set_gas_rate(
            uow.session,
            charge_area_id=area.id,
            rate_paise_per_scm=rate,
            effective_from=START + timedelta(days=days),
        )
        uow.commit()
        return tariff


def notices(db: Database, shop: Shop) -> list[TariffNotice]:
    with db.unit_of_work(tenant=shop.tenant.id, read_only=True) as uow:
        return list(uow.session.execute(select(TariffNotice)).scalars())


def test_households_with_a_currency_meter_are_told_once_when_the_price_takes_effect(
    db: Database, area_shop: Shop
) -> None:
    relay_all(db)  # the area's first price (set up by the shop) is not a change: nobody is told
    first_price_sms = sms_to(db, "9812345678")
    tariff = schedule(db, area_shop)
    relay_all(db)
    before_effect = notices(db, area_shop)

    clock.freeze(START + timedelta(days=1, minutes=1))
    relay_all(db)
    told = notices(db, area_shop)
    asha_sms = sms_to(db, "9812345678")
    bina_sms = sms_to(db, "9812345679")  # same area, no meter: nothing to set on a meter

    assert first_price_sms == []
    assert before_effect == []
    assert [(n.tariff_id, n.language) for n in told] == [(tariff.id, "hi")]
    assert len(asha_sms) == 1
    assert bina_sms == []
    assert "₹53.56 प्रति SCM (VAT सहित)" in asha_sms[0]
    assert "5 दिस॰ 2026" in asha_sms[0]
    assert "SN0001" in asha_sms[0]
    assert "अगले टॉप-अप" in asha_sms[0]


def test_a_re_run_of_the_notices_texts_nobody_twice(db: Database, area_shop: Shop) -> None:
    tariff = schedule(db, area_shop)
    clock.freeze(START + timedelta(days=1, minutes=1))
    relay_all(db)
    with db.unit_of_work(tenant=area_shop.tenant.id) as uow:  # the batch queued again, as a replay would
        emit(uow.session, NOTICE_TOPIC, {"tariff_id": str(tariff.id), "after": ""})
        uow.commit()
    relay_all(db)
    with db.unit_of_work(tenant=area_shop.tenant.id) as uow:
        again = do_send_notice_batch(uow.session, tariff_id=tariff.id, after=None)
        uow.commit()

    assert len(notices(db, area_shop)) == 1
    assert len(sms_to(db, "9812345678")) == 1
    assert (again.reached, again.sent) == (1, 0)


def test_a_large_area_is_notified_in_chunks_each_queuing_the_next(db: Database, area_shop: Shop) -> None:
    tariff = schedule(db, area_shop)
    clock.freeze(START + timedelta(days=1, minutes=1))
    with db.unit_of_work(tenant=area_shop.tenant.id) as uow:
        first = do_send_notice_batch(uow.session, tariff_id=tariff.id, after=None, chunk=1)
        uow.commit()
    with db.unit_of_work(tenant=area_shop.tenant.id) as uow:
        assert first.next_after is not None
        last = do_send_notice_batch(uow.session, tariff_id=tariff.id, after=first.next_after, chunk=1)
        uow.commit()

    assert (first.reached, first.sent) == (1, 1)
    assert (last.reached, last.sent, last.next_after) == (0, 0, None)
    with db.system(read_only=True) as uow:
        queued = [
            e.payload
            for e in uow.session.execute(
                select(OutboxEvent).where(OutboxEvent.topic == NOTICE_TOPIC)
            ).scalars()
        ]
    assert {"tariff_id": str(tariff.id), "after": str(first.next_after)} in queued


def test_a_price_superseded_before_it_took_effect_is_not_announced(db: Database, area_shop: Shop) -> None:
    superseded = schedule(db, area_shop, rate=5_100, days=1)
    schedule(db, area_shop, rate=5_300, days=2)
    clock.freeze(START + timedelta(days=3))
    with db.unit_of_work(tenant=area_shop.tenant.id) as uow:
        outcome = do_send_notice_batch(uow.session, tariff_id=superseded.id, after=None)
        uow.commit()

    assert outcome.superseded
    assert notices(db, area_shop) == []


def test_the_english_notice_says_price_date_and_the_meter_update() -> None:
    text = notice_text(
        "en",
        rate_paise_per_scm=NEW_RATE,
        vat_bp=300,
        effective_from=START + timedelta(days=1),
        consumer_number="ALP-C-00000001",
        meter_serial="SN0001",
    )
    assert text == (
        "Gas price change: from 5 Dec 2026 piped gas in your area costs ₹53.56 per SCM including VAT. "
        "Your next top-up will also set the new price on meter SN0001: enter the receipt's tokens in the "
        "order given. Consumer no. ALP-C-00000001."
    )
