"""Online payments: order → checkout → (callback | webhook) → capture → vend, in one transaction; refunds.

The money path. A payment is settled exactly once whichever of the payer's redirect (the checkout
callback) and the gateway's webhook arrives first, and however often either is retried:
- both take the order's row lock first (fixed order: order, then whatever the vend locks), so they queue;
- the second finds the `gateway_payment` row (unique per tenant on the gateway's payment id) and returns
  its vend; and the vend itself is idempotent on `rzp:<payment id>`, a second net under the first.
Payment row, ledger entry, tokens and receipt commit together or not at all: a crash anywhere leaves
nothing behind, and the next callback or webhook retry settles the payment afresh.

A vend the rules refuse (meter suspended, daily limit) must not lose the money: it runs in a savepoint,
and when refused the payment is still recorded, as `vend_failed`, for a refund (the honest rule's case 1:
no token, nothing posted, the money goes back through the gateway).

Every `do_*` takes the caller's `Session` and never commits.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.ledger.rules import AccountCode, credit, debit
from citygas.ledger.service import account_for, post_entry
from citygas.meters.models import Meter
from citygas.notifications import ports as notifications
from citygas.payments.gateway.models import (
    GatewayAccount,
    GatewayOrder,
    GatewayPayment,
    GatewayRefund,
    GatewayWebhookDelivery,
)
from citygas.payments.gateway.ports import (
    GatewayPaymentInfo,
    GatewayRefundInfo,
    MalformedGatewayData,
    PaymentGateway,
    payment_from_entity,
    refund_from_entity,
)
from citygas.payments.gateway.razorpay_adapter import RazorpayGateway
from citygas.payments.gateway.simulator import GatewaySimulator
from citygas.platform.errors import Conflict, DomainError, NotFound, ValidationFailed
from citygas.platform.ids import uuid7
from citygas.platform.money import format_inr
from citygas.platform.tenancy import current_tenant
from citygas.platform.time import utcnow
from citygas.vending.models import Vend
from citygas.vending.rules import DEFAULT_LIMITS, Channel, VendLimits, VendRequest
from citygas.vending.service import do_vend

log = logging.getLogger(__name__)

IDEMPOTENCY_PREFIX = "rzp:"  # the vend's idempotency key is "rzp:<gateway payment id>"
MAX_REQUEST_KEY = 40  # a refund's request key travels as the gateway's `receipt` (at most 40 characters)


# --- errors: each a stable `code` in problem+json --------------------------------------------------------


class BadSignature(DomainError):
    code = "bad_signature"
    status = 400
    title = "The signature does not match"


class PaymentRefused(DomainError):
    """An order, payment or refund the rules refuse; nothing was written. `code` says which rule."""

    status = 422
    title = "The payment cannot be accepted"

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.code = code


class UnknownOrder(NotFound):
    code = "unknown_order"


class UnknownPayment(NotFound):
    code = "unknown_payment"


class AmountMismatch(Conflict):
    code = "amount_mismatch"


class PaymentNotCaptured(Conflict):
    code = "payment_not_captured"


class GatewayNotConfigured(Conflict):
    code = "gateway_not_configured"


class RefundKeyConflict(Conflict):
    code = "idempotency_conflict"


# --- the tenant's gateway --------------------------------------------------------------------------------


def _aad(tenant_id: uuid.UUID, purpose: str) -> bytes:
    return f"citygas gateway_account v1 {tenant_id} {purpose}".encode()


def seal_secret(master_key: bytes, tenant_id: uuid.UUID, purpose: str, secret: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(master_key).encrypt(nonce, secret.encode(), _aad(tenant_id, purpose))
    return base64.b64encode(nonce + sealed).decode()


def open_secret(master_key: bytes, tenant_id: uuid.UUID, purpose: str, sealed: str) -> str:
    raw = base64.b64decode(sealed)
    try:
        return AESGCM(master_key).decrypt(raw[:12], raw[12:], _aad(tenant_id, purpose)).decode()
    except InvalidTag as exc:
        raise GatewayNotConfigured(
            "the gateway secrets cannot be opened with this master key; enter them again"
        ) from exc


def do_configure_gateway_account(
    session: Session, *, master_key: bytes, key_id: str, key_secret: str, webhook_secret: str
) -> GatewayAccount:
    """Connect the tenant to its Razorpay merchant account (replacing an earlier one)."""
    if not key_id.startswith(("rzp_live_", "rzp_test_")):
        raise ValidationFailed("a Razorpay key id starts with rzp_live_ or rzp_test_")
    if len(key_secret) < 16 or len(webhook_secret) < 12:
        raise ValidationFailed("the key secret and the webhook secret look too short to be real")
    tenant_id = current_tenant(session)
    account = session.execute(select(GatewayAccount)).scalar_one_or_none()
    if account is None:
        account = GatewayAccount(created_at=utcnow(), provider="razorpay")
        session.add(account)
    account.key_id = key_id
    account.key_secret_sealed = seal_secret(master_key, tenant_id, "key_secret", key_secret)
    account.webhook_secret_sealed = seal_secret(master_key, tenant_id, "webhook_secret", webhook_secret)
    account.active = True
    session.flush()
    return account


def gateway_for(session: Session, *, master_key: bytes, simulator_enabled: bool) -> PaymentGateway:
    """The tenant's gateway: its Razorpay account if it has one, else the simulator where it runs."""
    account = session.execute(
        select(GatewayAccount).where(GatewayAccount.active.is_(True))
    ).scalar_one_or_none()
    if account is not None:
        tenant_id = current_tenant(session)
        return RazorpayGateway(
            key_id=account.key_id,
            key_secret=open_secret(master_key, tenant_id, "key_secret", account.key_secret_sealed),
            webhook_secret=open_secret(
                master_key, tenant_id, "webhook_secret", account.webhook_secret_sealed
            ),
        )
    if simulator_enabled:
        return GatewaySimulator.for_tenant(session, master_key=master_key)
    raise GatewayNotConfigured("online payments are not set up for this gas company yet")


# --- orders ----------------------------------------------------------------------------------------------


def check_order_amount(amount_paise: int, limits: VendLimits = DEFAULT_LIMITS) -> None:
    """The vend's own per-top-up limits, checked before the payer is asked for money."""
    if isinstance(amount_paise, bool) or not isinstance(amount_paise, int):
        raise PaymentRefused("amount_invalid", "the amount is a whole number of paise (₹500 is 50000)")
    if not limits.minimum_paise <= amount_paise <= limits.maximum_paise:
        raise PaymentRefused(
            "amount_out_of_range",
            f"a top-up is between {format_inr(limits.minimum_paise)} and {format_inr(limits.maximum_paise)}",
            minimum_paise=limits.minimum_paise,
            maximum_paise=limits.maximum_paise,
        )


def get_payable_customer(session: Session, consumer_number: str, *, household_phone: str | None) -> Customer:
    """The customer an order may be for. A household (`household_phone` given) reaches only connections
    registered to its own phone; another's consumer number looks exactly like an unknown one."""
    customer = session.execute(
        select(Customer).where(Customer.consumer_number == consumer_number.strip().upper())
    ).scalar_one_or_none()
    if customer is None or (household_phone is not None and customer.phone != household_phone):
        raise PaymentRefused("unknown_consumer", f"no connection with consumer number {consumer_number}")
    return customer


def do_create_order(
    session: Session,
    gateway: PaymentGateway,
    *,
    consumer_number: str,
    amount_paise: int,
    household_phone: str | None = None,
    limits: VendLimits = DEFAULT_LIMITS,
) -> GatewayOrder:
    """An order at the gateway for a top-up of `amount_paise` to a consumer's meter. Refused before any
    money is asked for when the amount is outside the vend limits or the meter cannot take credit."""
    check_order_amount(amount_paise, limits)
    customer = get_payable_customer(session, consumer_number, household_phone=household_phone)
    meter = session.execute(
        select(Meter).where(Meter.customer_id == customer.id, Meter.state == "active")
    ).scalar_one_or_none()
    if meter is None or meter.key_change_pending:
        raise PaymentRefused(
            "no_active_meter",
            f"connection {customer.consumer_number} has no meter that can take credit now; "
            "the care centre can help",
        )
    order_id = uuid7()
    info = gateway.create_order(
        amount_paise=amount_paise,
        receipt=str(order_id),
        notes={"consumer_number": customer.consumer_number, "purpose": "gas top-up"},
    )
    if info.amount_paise != amount_paise:
        raise AmountMismatch(f"the gateway made an order of {info.amount_paise} paise, not {amount_paise}")
    order = GatewayOrder(
        id=order_id,
        gateway=gateway.name,
        gateway_order_id=info.id,
        customer_id=customer.id,
        consumer_number=customer.consumer_number,
        amount_paise=amount_paise,
        currency=info.currency or "INR",
        status="created",
        created_at=utcnow(),
        paid_at=None,
    )
    session.add(order)
    session.flush()
    return order


def get_order(session: Session, gateway_order_id: str, *, lock: bool = False) -> GatewayOrder:
    query = select(GatewayOrder).where(GatewayOrder.gateway_order_id == gateway_order_id)
    if lock:
        # The callback and the webhook of one payment queue here (PostgreSQL); SQLite's BEGIN IMMEDIATE
        # already runs writers one at a time.
        query = query.with_for_update()
    order = session.execute(query).scalar_one_or_none()
    if order is None:
        raise UnknownOrder(f"no order {gateway_order_id}")
    return order


def list_order_payments(session: Session, order: GatewayOrder) -> list[GatewayPayment]:
    return list(
        session.execute(
            select(GatewayPayment)
            .where(GatewayPayment.order_id == order.id)
            .order_by(GatewayPayment.created_at)
        ).scalars()
    )


def get_payment(session: Session, gateway_payment_id: str, *, lock: bool = False) -> GatewayPayment:
    query = select(GatewayPayment).where(GatewayPayment.gateway_payment_id == gateway_payment_id)
    if lock:
        query = query.with_for_update()
    payment = session.execute(query).scalar_one_or_none()
    if payment is None:
        raise UnknownPayment(f"no payment {gateway_payment_id}")
    return payment


# --- settling a payment: capture → vend ------------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    order: GatewayOrder
    payment: GatewayPayment
    vend: Vend | None  # None when the vend was refused (`payment.vend_error` says why)
    replayed: bool  # True: settled earlier (by the callback or the webhook); nothing new was written


def _existing_settlement(session: Session, order: GatewayOrder, payment: GatewayPayment) -> Settlement:
    vend = session.get(Vend, payment.vend_id) if payment.vend_id else None
    return Settlement(order, payment, vend, replayed=True)


def vend_request_for(order: GatewayOrder, info: GatewayPaymentInfo) -> VendRequest:
    return VendRequest(
        channel=Channel.UPI if info.method == "upi" else Channel.ONLINE,
        amount_paise=info.amount_paise,
        idempotency_key=f"{IDEMPOTENCY_PREFIX}{info.id}",
        consumer_number=order.consumer_number,
        payment_reference=info.id,
    )


def _settle(
    session: Session,
    order: GatewayOrder,
    info: GatewayPaymentInfo,
    *,
    via: str,
    master_key: bytes,
    now: datetime | None,
) -> Settlement:
    """With the order locked: record the captured payment and vend it, or return the earlier result."""
    found = session.execute(
        select(GatewayPayment).where(GatewayPayment.gateway_payment_id == info.id)
    ).scalar_one_or_none()
    if found is not None:
        return _existing_settlement(session, order, found)
    if info.order_id != order.gateway_order_id:
        raise PaymentRefused(
            "payment_not_for_order", f"payment {info.id} is not for order {order.gateway_order_id}"
        )
    if info.status != "captured":
        raise PaymentNotCaptured(f"payment {info.id} is {info.status or 'unknown'}, not captured")
    if info.amount_paise != order.amount_paise or info.currency != order.currency:
        raise AmountMismatch(
            f"payment {info.id} is {info.amount_paise} {info.currency}; the order is "
            f"{order.amount_paise} {order.currency}",
            payment_amount_paise=info.amount_paise,
            order_amount_paise=order.amount_paise,
        )
    at = now or utcnow()
    payment = GatewayPayment(
        gateway_payment_id=info.id,
        order_id=order.id,
        method=info.method[:16] or "card",
        vpa=info.vpa[:100],
        status="captured",
        amount_paise=info.amount_paise,
        refunded_paise=0,
        vend_error="",
        confirmed_by=via,
        created_at=at,
    )
    session.add(payment)
    session.flush()
    vend: Vend | None = None
    try:
        # A savepoint: a vend the rules refuse leaves none of its rows, and the payment still records.
        with session.begin_nested():
            vend = do_vend(session, vend_request_for(order, info), master_key=master_key, now=now).vend
    except DomainError as exc:
        if exc.status == 409:  # in doubt or conflicting: let the gateway's retry try again
            raise
        payment.status = "vend_failed"
        payment.vend_error = f"{exc.code}: {exc.detail}"[:300]
        customer = session.get(Customer, order.customer_id)
        if customer is not None:
            notifications.request(
                session,
                channel="sms",
                to=customer.phone,
                text=f"We received {format_inr(info.amount_paise)} (payment {info.id}) but could not top up "
                f"{customer.consumer_number}: {exc.detail}. It will be refunded to you.",
            )
        log.warning("gateway payment not vended", extra={"payment_id": info.id, "code": exc.code})
    else:
        payment.vend_id = vend.id
    order.status = "paid"
    order.paid_at = at
    session.flush()
    return Settlement(order, payment, vend, replayed=False)


def do_confirm_checkout(
    session: Session,
    gateway: PaymentGateway,
    *,
    order_id: str,
    payment_id: str,
    signature: str,
    master_key: bytes,
    now: datetime | None = None,
) -> Settlement:
    """The payer's browser is back from checkout with a payment id and signature. Trust neither until the
    signature is verified here, server-side; then capture (if the gateway only authorised) and vend."""
    if not gateway.verify_payment_signature(order_id=order_id, payment_id=payment_id, signature=signature):
        raise BadSignature("the payment signature does not match this order and payment")
    order = get_order(session, order_id, lock=True)
    found = session.execute(
        select(GatewayPayment).where(GatewayPayment.gateway_payment_id == payment_id)
    ).scalar_one_or_none()
    if found is not None:  # the webhook (or an earlier callback) settled it; ask the gateway nothing
        return _existing_settlement(session, order, found)
    info = gateway.fetch_payment(payment_id)
    if info.status == "authorized":
        info = gateway.capture_payment(payment_id, amount_paise=order.amount_paise)
    return _settle(session, order, info, via="callback", master_key=master_key, now=now)


# --- webhooks --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookOutcome:
    status: str  # vended | already_settled | vend_failed | refund_recorded | duplicate | ignored | refused
    event: str = ""
    payment_id: str = ""
    vend_id: str = ""
    detail: str = ""

    def body(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


def _insert_delivery(session: Session, values: dict[str, Any]) -> bool:
    """INSERT .. ON CONFLICT DO NOTHING on (tenant, body hash): False when this body was received
    before — also when the first delivery is still in flight, whose commit this waits for."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(GatewayWebhookDelivery)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["tenant_id", "body_sha256"])
        .returning(GatewayWebhookDelivery.id)
    )
    return session.execute(statement).first() is not None


def _entity(event: dict[str, Any], name: str) -> dict[str, Any]:
    payload = event.get("payload")
    holder = payload.get(name) if isinstance(payload, dict) else None
    entity = holder.get("entity") if isinstance(holder, dict) else None
    if not isinstance(entity, dict):
        raise MalformedGatewayData(f"the event carries no {name}")
    return entity


def do_receive_webhook(
    session: Session,
    gateway: PaymentGateway,
    *,
    body: bytes,
    signature: str,
    event_id: str = "",
    master_key: bytes,
    now: datetime | None = None,
) -> WebhookOutcome:
    """A webhook from the gateway, authenticated by its signature over the raw body and nothing else.
    A forged body is refused with nothing written; a replayed one (same body or same event id) is
    recognised and changes nothing; a genuine one is recorded once and acted on."""
    digest = hashlib.sha256(body).hexdigest()
    if not gateway.verify_webhook_signature(body=body, signature=signature):
        log.warning("gateway webhook with a bad signature refused", extra={"body_sha256": digest})
        raise BadSignature("the webhook signature does not match its body")
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise MalformedGatewayData("the webhook body is not JSON") from exc
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise MalformedGatewayData("the webhook body is not a gateway event")
    kind: str = event["event"][:40]
    event_id = event_id.strip()[:64]
    if (
        event_id
        and session.execute(
            select(GatewayWebhookDelivery.id).where(GatewayWebhookDelivery.event_id == event_id)
        ).first()
    ):
        return WebhookOutcome("duplicate", kind, detail=f"event {event_id} was received before")
    at = now or utcnow()
    if not _insert_delivery(
        session,
        {
            "id": uuid7(),
            "tenant_id": current_tenant(session),
            "body_sha256": digest,
            "event_id": event_id,
            "event": kind,
            "gateway_payment_id": "",
            "outcome": "received",
            "detail": "",
            "received_at": at,
            "processed_at": None,
        },
    ):
        return WebhookOutcome("duplicate", kind, detail="this delivery was received before")
    outcome = _act_on_event(session, kind, event, master_key=master_key, now=now)
    delivery = session.execute(
        select(GatewayWebhookDelivery).where(GatewayWebhookDelivery.body_sha256 == digest)
    ).scalar_one()
    delivery.gateway_payment_id = outcome.payment_id[:64]
    delivery.outcome = outcome.status
    delivery.detail = outcome.detail[:300]
    delivery.processed_at = utcnow()
    session.flush()
    return outcome


def _act_on_event(
    session: Session,
    kind: str,
    event: dict[str, Any],
    *,
    master_key: bytes,
    now: datetime | None,
) -> WebhookOutcome:
    if kind in ("payment.captured", "order.paid"):
        info = payment_from_entity(_entity(event, "payment"))
        try:
            order = get_order(session, info.order_id, lock=True)
            settled = _settle(session, order, info, via="webhook", master_key=master_key, now=now)
        except (UnknownOrder, AmountMismatch, PaymentRefused, PaymentNotCaptured) as exc:
            # Genuine, but nothing to vend: acknowledged (a gateway retrying it would not help, and one
            # failing too often is switched off) and kept on the delivery for a person to look at.
            return WebhookOutcome("refused", kind, info.id, detail=f"{exc.code}: {exc.detail}")
        status = (
            "already_settled" if settled.replayed else "vend_failed" if settled.vend is None else "vended"
        )
        return WebhookOutcome(
            status,
            kind,
            info.id,
            str(settled.vend.id) if settled.vend else "",
            settled.payment.vend_error,
        )
    if kind == "refund.processed":
        refund_info = refund_from_entity(_entity(event, "refund"))
        try:
            payment = get_payment(session, refund_info.payment_id, lock=True)
        except UnknownPayment as exc:
            return WebhookOutcome("ignored", kind, refund_info.payment_id, detail=f"{exc.code}: {exc.detail}")
        refund, _ = _record_refund(session, payment, refund_info, request_key=None, reason="")
        return WebhookOutcome(
            "refund_recorded", kind, payment.gateway_payment_id, detail=refund.gateway_refund_id
        )
    if kind == "payment.failed":
        info = payment_from_entity(_entity(event, "payment"))
        return WebhookOutcome("ignored", kind, info.id, detail=info.error_description or "payment failed")
    return WebhookOutcome("ignored", kind, detail="citygas does not act on this event")


# --- refunds ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundOutcome:
    refund: GatewayRefund
    payment: GatewayPayment
    replayed: bool


def do_refund_payment(
    session: Session,
    gateway: PaymentGateway,
    *,
    payment_id: str,
    reason: str,
    request_key: str,
    amount_paise: int | None = None,
) -> RefundOutcome:
    """Send money back through the gateway, at most what was paid, once per `request_key`.

    The honest rule of a one-way meter (docs/ledger.md): a token once issued cannot be taken back, so
    when the payment had vended the customer keeps the credit and the refunded amount becomes debt,
    recovered first from the next top-up: `Dr debt_receivable(customer) / Cr gateway_clearing`. When the
    vend had been refused nothing was posted, and nothing is posted now."""
    key = request_key.strip()
    if not key or len(key) > MAX_REQUEST_KEY:
        raise ValidationFailed(f"a refund request key is 1–{MAX_REQUEST_KEY} characters")
    if not reason.strip():
        raise ValidationFailed("say why the money is refunded")
    earlier = session.execute(
        select(GatewayRefund).where(GatewayRefund.request_key == key)
    ).scalar_one_or_none()
    payment = get_payment(session, payment_id, lock=True)
    if earlier is not None:
        if earlier.payment_id != payment.id or (
            amount_paise is not None and amount_paise != earlier.amount_paise
        ):
            raise RefundKeyConflict(f"request key {key} was used for another refund")
        return RefundOutcome(earlier, payment, replayed=True)
    remaining = payment.amount_paise - payment.refunded_paise
    amount = remaining if amount_paise is None else amount_paise
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise PaymentRefused("refund_amount_invalid", "a refund is a positive whole number of paise")
    if amount > remaining:
        raise PaymentRefused(
            "refund_exceeds_payment",
            f"at most {format_inr(remaining)} of payment {payment_id} can still be refunded",
            refundable_paise=remaining,
        )
    info = gateway.refund(
        payment_id, amount_paise=amount, receipt=key, notes={"reason": reason.strip()[:200]}
    )
    refund, replayed = _record_refund(session, payment, info, request_key=key, reason=reason.strip())
    return RefundOutcome(refund, payment, replayed)


def _record_refund(
    session: Session,
    payment: GatewayPayment,
    info: GatewayRefundInfo,
    *,
    request_key: str | None,
    reason: str,
) -> tuple[GatewayRefund, bool]:
    """Record a refund the gateway made, once per gateway refund id (the staff action and the
    `refund.processed` webhook both arrive here), with its ledger entry when a token had been issued."""
    found = session.execute(
        select(GatewayRefund).where(GatewayRefund.gateway_refund_id == info.id)
    ).scalar_one_or_none()
    if found is not None:
        return found, True
    if info.payment_id != payment.gateway_payment_id:
        raise PaymentRefused(
            "refund_not_for_payment", f"refund {info.id} is not for payment {payment.gateway_payment_id}"
        )
    if payment.refunded_paise + info.amount_paise > payment.amount_paise:
        raise PaymentRefused(
            "refund_exceeds_payment", f"refund {info.id} exceeds what payment {info.id} paid"
        )
    order = session.get(GatewayOrder, payment.order_id)
    assert order is not None  # a foreign key
    refund = GatewayRefund(
        gateway_refund_id=info.id,
        # A refund first seen on the webhook carries our request key back as the gateway's receipt.
        request_key=request_key or info.receipt or None,
        payment_id=payment.id,
        amount_paise=info.amount_paise,
        status=info.status or "processed",
        reason=(reason or "refund made at the gateway")[:300],
        ledger_entry_id=None,
        created_at=utcnow(),
    )
    if payment.vend_id is not None:
        posted = post_entry(
            session,
            idempotency_key=f"gateway_refund:{info.id}",
            reference=f"refund {info.id}"[:120],
            kind="refund",
            lines=[
                debit(
                    account_for(session, AccountCode.DEBT_RECEIVABLE, order.customer_id).id, info.amount_paise
                ),
                credit(account_for(session, AccountCode.GATEWAY_CLEARING).id, info.amount_paise),
            ],
            memo=f"payment {payment.gateway_payment_id}: {refund.reason}"[:500],
        )
        refund.ledger_entry_id = posted.entry.id
    payment.refunded_paise += info.amount_paise
    payment.status = "refunded" if payment.refunded_paise == payment.amount_paise else "partially_refunded"
    session.add(refund)
    session.flush()
    customer = session.get(Customer, order.customer_id)
    if customer is not None:
        owed = (
            f" The gas credit stays on your meter, so {format_inr(info.amount_paise)} will be recovered from "
            "your next top-up."
            if payment.vend_id
            else ""
        )
        notifications.request(
            session,
            channel="sms",
            to=customer.phone,
            text=f"{format_inr(info.amount_paise)} of payment {payment.gateway_payment_id} is refunded "
            f"(refund {info.id}).{owed}",
        )
    return refund, False
