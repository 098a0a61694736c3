"""Tariff change notices: when a new gas price takes effect in a charge area, every household there with a
currency-mode meter is told by SMS, in its own language, the new price per SCM, the date, and that its next
top-up will also set the new price on the meter (the SetTariffRate token comes first on that receipt).

How it runs (all through the outbox, so a notice goes out only if the price change committed):
1. `do_set_gas_rate` emits `tariff.changed` when the price is scheduled;
2. its handler (`tariffs.tasks`) queues the first notice batch, due at the moment the price takes effect
   (a price scheduled for next month is announced next month, not today);
3. each batch texts at most `CHUNK` customers, in customer-id order, in its own transaction, and queues
   the next batch after the last customer it reached: a large area is many small transactions, never
   one giant one, and a failed batch is retried alone.

Exactly once per customer per price version: `tariff_notice` is unique on (tariff, customer), so a re-run
batch, a duplicated event or a retry after a crash skips those already told. The SMS itself carries the
outbox event id as its idempotency key (`notifications`).

A price is a contractual term of the connection, so its notice is sent whatever the household's
notification preferences say (like the regulator's outage and safety messages).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.meters.models import Meter, MeterModel
from citygas.notifications import ports as notifications
from citygas.platform.money import format_inr
from citygas.platform.outbox import OutboxEvent, emit
from citygas.platform.time import ensure_aware, utcnow
from citygas.tariffs.models import GasTariff, TariffNotice
from citygas.tariffs.rules import TaxKind, rate_with_tax
from citygas.tariffs.service import NoRateInForce, get_gas_rate, get_state_of_area, get_tax_bp
from citygas.web.i18n import format_day, language_of

NOTICE_TOPIC: Final = "tariff.notice_batch"
CHUNK: Final = 200  # customers per batch: one short transaction each
# A meter at the household (what `vending` resolves a customer's meter from): it will take the token.
ON_PREMISES: Final = ("installed", "commissioned", "active", "suspended", "faulty")


def queue_notices(session: Session, tariff_id: uuid.UUID, effective_from: datetime) -> uuid.UUID:
    """Queue the first notice batch of a price version, due when the price takes effect."""
    return _queue_batch(session, tariff_id, after=None, due=ensure_aware(effective_from))


def _queue_batch(
    session: Session, tariff_id: uuid.UUID, *, after: uuid.UUID | None, due: datetime
) -> uuid.UUID:
    event_id = emit(
        session, NOTICE_TOPIC, {"tariff_id": str(tariff_id), "after": str(after) if after else ""}
    )
    # The outbox relays an event from `next_attempt_at`; an event for a future price waits until then.
    event = session.get(OutboxEvent, event_id)
    assert event is not None  # just added to this session
    event.next_attempt_at = max(event.next_attempt_at, due)
    return event_id


def notice_text(
    lang: str,
    *,
    rate_paise_per_scm: int,
    vat_bp: int | None,
    effective_from: datetime,
    consumer_number: str,
    meter_serial: str,
) -> str:
    """The SMS, in English or Hindi. The price is the one the household pays (VAT included) when VAT is
    known, else the price before VAT, said as such."""
    day = format_day(lang, effective_from)
    if language_of(lang) == "hi":
        price = (
            f"{format_inr(rate_with_tax(rate_paise_per_scm, vat_bp))} प्रति SCM (VAT सहित)"
            if vat_bp is not None
            else f"{format_inr(rate_paise_per_scm)} प्रति SCM + VAT"
        )
        return (
            f"गैस के दाम में बदलाव: {day} से आपके क्षेत्र में पाइप वाली गैस का दाम {price} है। "
            f"आपके अगले टॉप-अप के साथ मीटर {meter_serial} में भी यह नया दाम अपने-आप सेट हो जाएगा; "
            f"रसीद के टोकन उसी क्रम में डालें। उपभोक्ता संख्या {consumer_number}।"
        )
    price = (
        f"{format_inr(rate_with_tax(rate_paise_per_scm, vat_bp))} per SCM including VAT"
        if vat_bp is not None
        else f"{format_inr(rate_paise_per_scm)} per SCM plus VAT"
    )
    return (
        f"Gas price change: from {day} piped gas in your area costs {price}. "
        f"Your next top-up will also set the new price on meter {meter_serial}: enter the receipt's "
        f"tokens in the order given. Consumer no. {consumer_number}."
    )


@dataclass(frozen=True)
class BatchResult:
    reached: int  # customers in this batch
    sent: int  # of them, newly texted (the others had been told before)
    next_after: uuid.UUID | None  # where the next batch starts; None: this was the last
    waiting: bool = False  # the price is not in force yet; the batch was queued again for then
    superseded: bool = False  # a later price took effect first; its own notice tells the households


def do_send_notice_batch(
    session: Session,
    *,
    tariff_id: uuid.UUID,
    after: uuid.UUID | None,
    now: datetime | None = None,
    chunk: int = CHUNK,
) -> BatchResult:
    """Text the next `chunk` households of the price's charge area that have not been told yet."""
    at = now or utcnow()
    tariff = session.get(GasTariff, tariff_id)
    if tariff is None:  # not this tenant's (the wall) or never committed: nothing to announce
        return BatchResult(0, 0, None)
    effective_from = ensure_aware(tariff.effective_from)
    if effective_from > at:
        _queue_batch(session, tariff_id, after=after, due=effective_from)
        return BatchResult(0, 0, None, waiting=True)
    if get_gas_rate(session, tariff.charge_area_id, at).effective_from > effective_from:
        return BatchResult(0, 0, None, superseded=True)
    try:
        vat_bp: int | None = get_tax_bp(
            session, TaxKind.VAT, get_state_of_area(session, tariff.charge_area_id), effective_from
        )
    except NoRateInForce:
        vat_bp = None
    query = (
        select(Customer, Meter.serial)
        .join(Meter, Meter.customer_id == Customer.id)
        .join(MeterModel, MeterModel.id == Meter.model_id)
        .where(
            Customer.charge_area_id == tariff.charge_area_id,
            Meter.state.in_(ON_PREMISES),
            MeterModel.mode == "currency",
        )
        .order_by(Customer.id)
        .limit(chunk)
    )
    if after is not None:
        query = query.where(Customer.id > after)
    rows = session.execute(query).all()
    told = set(
        session.execute(
            select(TariffNotice.customer_id).where(
                TariffNotice.tariff_id == tariff_id, TariffNotice.customer_id.in_([c.id for c, _ in rows])
            )
        ).scalars()
    )
    sent = 0
    for customer, serial in rows:
        if customer.id in told:
            continue
        told.add(customer.id)  # a customer with two meters on the premises is told once
        lang = language_of(customer.language)
        session.add(
            TariffNotice(tariff_id=tariff_id, customer_id=customer.id, language=lang, sent_at=utcnow())
        )
        notifications.request(
            session,
            channel="sms",
            to=customer.phone,
            text=notice_text(
                lang,
                rate_paise_per_scm=tariff.rate_paise_per_scm,
                vat_bp=vat_bp,
                effective_from=effective_from,
                consumer_number=customer.consumer_number,
                meter_serial=serial,
            ),
        )
        sent += 1
    session.flush()
    next_after = rows[-1][0].id if len(rows) == chunk else None
    if next_after is not None:
        _queue_batch(session, tariff_id, after=next_after, due=at)
    return BatchResult(len(rows), sent, next_after)
