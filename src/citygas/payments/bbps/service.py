"""BBPS use cases: quote a prepaid bill, turn a payment notification into a vend (exactly once per BBPS
transaction reference), and answer a status check. Nothing here commits; the route does, once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.meters.models import Meter
from citygas.payments.bbps.models import BbpsBillFetch, BbpsPayment
from citygas.payments.bbps.rules import (
    FETCH_VALID_FOR,
    PaymentChannel,
    PaymentMode,
    bbps_idempotency_key,
    mask_name,
)
from citygas.platform.errors import Conflict, DomainError, NotFound
from citygas.platform.ids import uuid7
from citygas.platform.time import utcnow
from citygas.sts import group_token
from citygas.vending.models import Vend
from citygas.vending.rules import DEFAULT_LIMITS, Channel, VendLimits, VendRequest
from citygas.vending.service import do_vend

# BBPS may stamp the payment a little ahead of our clock; beyond this it is a wrong clock or a forgery.
CLOCK_SLACK = timedelta(minutes=10)


class UnknownConsumer(NotFound):
    code = "unknown_consumer"
    title = "No such consumer"


class ConsumerNotPayable(DomainError):
    code = "consumer_not_payable"
    status = 422
    title = "This consumer cannot be paid for now"


class FetchReferenceInvalid(DomainError):
    code = "fetch_reference_invalid"
    status = 422
    title = "The bill fetch reference does not fit this payment"


class PaidAtInvalid(DomainError):
    code = "paid_at_invalid"
    status = 422
    title = "The payment time is not believable"


class TransactionConflict(Conflict):
    code = "idempotency_conflict"


class UnknownTransaction(NotFound):
    code = "unknown_transaction"
    title = "No such BBPS transaction"


@dataclass(frozen=True)
class PaymentNotice:
    bbps_txn_ref: str
    consumer_number: str
    amount_paise: int
    paid_at: datetime
    payment_mode: PaymentMode
    payment_channel: PaymentChannel
    agent_id: str
    fetch_reference: str | None = None
    customer_mobile: str | None = None


@dataclass(frozen=True)
class AcceptedPayment:
    payment: BbpsPayment
    vend: Vend
    replayed: bool  # True: BBPS retried a notification we had already vended; nothing new was written


def _customer(session: Session, consumer_number: str) -> Customer:
    customer = session.execute(
        select(Customer).where(Customer.consumer_number == consumer_number.strip())
    ).scalar_one_or_none()
    if customer is None:
        raise UnknownConsumer(f"no consumer {consumer_number.strip()} at this biller")
    return customer


def _active_meter(session: Session, customer: Customer) -> Meter:
    meter = session.execute(
        select(Meter).where(Meter.customer_id == customer.id, Meter.state == "active")
    ).scalar_one_or_none()
    if meter is None:
        raise ConsumerNotPayable(
            f"consumer {customer.consumer_number} has no active meter; a top-up cannot be delivered"
        )
    return meter


def do_fetch_bill(
    session: Session,
    *,
    consumer_number: str,
    agent_id: str = "",
    payment_channel: PaymentChannel | None = None,
    limits: VendLimits = DEFAULT_LIMITS,
    now: datetime | None = None,
) -> tuple[BbpsBillFetch, Customer]:
    """Quote a prepaid account: no amount due, any amount between the vend limits. Refused for an unknown
    consumer or one whose meter cannot take credit, so the payer is stopped before paying."""
    now = now or utcnow()
    customer = _customer(session, consumer_number)
    _active_meter(session, customer)
    fetch = BbpsBillFetch(
        fetch_reference=f"BF{uuid7().hex.upper()}",
        customer_id=customer.id,
        consumer_number=customer.consumer_number,
        agent_id=agent_id,
        payment_channel=payment_channel.value if payment_channel else "",
        minimum_paise=limits.minimum_paise,
        maximum_paise=limits.maximum_paise,
        fetched_at=now,
        valid_until=now + FETCH_VALID_FOR,
    )
    session.add(fetch)
    session.flush()
    return fetch, customer


def fetch_answer(fetch: BbpsBillFetch, customer: Customer) -> dict[str, Any]:
    return {
        "fetch_reference": fetch.fetch_reference,
        "consumer_number": customer.consumer_number,
        "customer_name": mask_name(customer.name),
        "customer_status": customer.status,
        "bill": {
            "bill_type": "prepaid",
            "due_amount_paise": None,
            "minimum_amount_paise": fetch.minimum_paise,
            "maximum_amount_paise": fetch.maximum_paise,
            "amount_exactness": "RANGE",
        },
        "valid_until": fetch.valid_until.astimezone(UTC).isoformat(),
    }


def get_payment(session: Session, bbps_txn_ref: str) -> BbpsPayment:
    payment = session.execute(
        select(BbpsPayment).where(BbpsPayment.bbps_txn_ref == bbps_txn_ref)
    ).scalar_one_or_none()
    if payment is None:
        raise UnknownTransaction(f"no BBPS transaction {bbps_txn_ref} reached this biller")
    return payment


def _replay(payment: BbpsPayment, notice: PaymentNotice, vend: Vend) -> AcceptedPayment:
    if (payment.consumer_number, payment.amount_paise) != (
        notice.consumer_number.strip(),
        notice.amount_paise,
    ):
        raise TransactionConflict(
            f"BBPS transaction {notice.bbps_txn_ref} was paid already for {payment.amount_paise} paise to "
            f"{payment.consumer_number}; a different payment needs a new transaction reference",
            receipt_number=vend.receipt_number,
        )
    return AcceptedPayment(payment, vend, replayed=True)


def _check_fetch(session: Session, notice: PaymentNotice, customer: Customer) -> None:
    if notice.fetch_reference is None:
        return  # a prepaid top-up may be paid without a fetch ("fetch optional" biller)
    fetch = session.execute(
        select(BbpsBillFetch).where(BbpsBillFetch.fetch_reference == notice.fetch_reference)
    ).scalar_one_or_none()
    if fetch is None:
        raise FetchReferenceInvalid(f"no bill fetch {notice.fetch_reference}")
    if fetch.customer_id != customer.id:
        raise FetchReferenceInvalid(
            f"bill fetch {notice.fetch_reference} was for another consumer, not {customer.consumer_number}"
        )
    # The quote was valid when the payer paid: BBPS may deliver the notification later than that.
    if notice.paid_at > fetch.valid_until:
        raise FetchReferenceInvalid(
            f"bill fetch {notice.fetch_reference} had expired when the payment was made"
        )


def do_accept_payment(
    session: Session, notice: PaymentNotice, *, master_key: bytes, now: datetime | None = None
) -> AcceptedPayment:
    """Vend for a BBPS payment, exactly once per `bbps_txn_ref`. The BBPS payment row and the vend are written
    in the caller's one transaction; a refused payment (unknown consumer, stale fetch, amount outside the
    limits, inactive meter) writes nothing, and BBPS reverses the payer's money on our error answer."""
    now = now or utcnow()
    existing = session.execute(
        select(BbpsPayment).where(BbpsPayment.bbps_txn_ref == notice.bbps_txn_ref)
    ).scalar_one_or_none()
    if existing is not None:
        vend = session.get(Vend, existing.vend_id)
        assert vend is not None  # written in the same transaction as the payment
        return _replay(existing, notice, vend)
    if notice.paid_at > now + CLOCK_SLACK:
        raise PaidAtInvalid(f"paid_at {notice.paid_at.isoformat()} is in the future")
    customer = _customer(session, notice.consumer_number)
    _check_fetch(session, notice, customer)
    outcome = do_vend(
        session,
        VendRequest(
            channel=Channel.BBPS,
            amount_paise=notice.amount_paise,
            idempotency_key=bbps_idempotency_key(notice.bbps_txn_ref),
            consumer_number=customer.consumer_number,
            payment_reference=notice.bbps_txn_ref,
        ),
        master_key=master_key,
        now=now,
    )
    if outcome.replayed:
        # A concurrent retry: do_vend waited for the first attempt's commit, which wrote the payment too.
        first = session.execute(
            select(BbpsPayment).where(BbpsPayment.bbps_txn_ref == notice.bbps_txn_ref)
        ).scalar_one_or_none()
        if first is not None:
            return _replay(first, notice, outcome.vend)
    payment = BbpsPayment(
        bbps_txn_ref=notice.bbps_txn_ref,
        consumer_number=customer.consumer_number,
        amount_paise=notice.amount_paise,
        fetch_reference=notice.fetch_reference,
        paid_at=notice.paid_at.astimezone(UTC),
        payment_mode=notice.payment_mode.value,
        payment_channel=notice.payment_channel.value,
        agent_id=notice.agent_id,
        customer_mobile_last4=(notice.customer_mobile or "")[-4:],
        vend_id=outcome.vend.id,
        received_at=now,
    )
    session.add(payment)
    session.flush()
    # The token SMS to the customer's registered phone is sent by the vend itself (notifications port);
    # the tokens are also on the vend, which the customer app shows.
    return AcceptedPayment(payment, outcome.vend, replayed=False)


def payment_answer(session: Session, payment: BbpsPayment) -> dict[str, Any]:
    """The answer to a payment notification and to a status check: built from stored rows only, so a
    retried notification gets exactly the first answer."""
    vend = session.get(Vend, payment.vend_id)
    assert vend is not None
    meter = session.get(Meter, vend.meter_id)
    assert meter is not None
    return {
        "status": "SUCCESS",
        "bbps_txn_ref": payment.bbps_txn_ref,
        "approval_ref_number": vend.receipt_number,
        "receipt_number": vend.receipt_number,
        "vend_id": str(vend.id),
        "consumer_number": payment.consumer_number,
        "amount_paise": payment.amount_paise,
        "gas_credit_paise": vend.gas_credit_paise,
        "meter_serial": meter.serial,
        "tokens": [
            {"kind": t["kind"], "token": t["token"], "grouped": group_token(t["token"]), "tid": t["tid"]}
            for t in vend.tokens
        ],
        "token_delivery": ["sms", "app"],
        "fetch_reference": payment.fetch_reference,
        "paid_at": payment.paid_at.astimezone(UTC).isoformat(),
        "payment_mode": payment.payment_mode,
        "payment_channel": payment.payment_channel,
        "agent_id": payment.agent_id,
    }
