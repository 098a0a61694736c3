"""Payments needing attention: money the gateway captured for which no token was issued (`vend_failed`),
and what the back office does about them — retry the vend once its cause is gone, or refund.

Both actions are idempotent, so a double click, a second tab or a retried request never vends or refunds
twice:
- a retry takes the order's row lock first (the same order as `_settle`: order, then payment, then what
  the vend locks) and vends through the one vend path with the payment's own key `rzp:<payment id>`; a
  second request finds the payment vended and returns the same vend;
- a refund takes the payment's row lock before looking for its request key, so a concurrent repeat of
  the same form (same key) waits for the first and then finds its refund.

Nothing here commits; the caller records who and why (`uow.because(reason)`), which lands on every
audit row the action writes (payment, vend, refund).

BBPS has no such state: a BBPS payment whose vend is refused is answered with an error, writes nothing,
and BBPS reverses the payer's money itself (docs/payments-bbps-and-settlement.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.payments.gateway.models import GatewayOrder, GatewayPayment, GatewayRefund
from citygas.payments.gateway.ports import PaymentGateway
from citygas.payments.gateway.service import (
    IDEMPOTENCY_PREFIX,
    MAX_REQUEST_KEY,
    PaymentRefused,
    RefundOutcome,
    UnknownPayment,
    do_refund_payment,
    get_payment,
)
from citygas.platform.audit import AuditEntry
from citygas.platform.errors import ValidationFailed
from citygas.platform.time import utcnow
from citygas.vending.models import Vend
from citygas.vending.rules import Channel, VendRequest
from citygas.vending.service import do_vend

MAX_REASON = 300
LIST_LIMIT = 200


@dataclass(frozen=True)
class PaymentView:
    """A payment with what a person needs to decide about it."""

    payment: GatewayPayment
    order: GatewayOrder
    customer: Customer | None

    @property
    def reason_code(self) -> str:
        return self.payment.vend_error.split(":", 1)[0] if self.payment.vend_error else ""

    @property
    def reason_text(self) -> str:
        parts = self.payment.vend_error.split(":", 1)
        return parts[1].strip() if len(parts) == 2 else self.payment.vend_error

    @property
    def refundable_paise(self) -> int:
        return self.payment.amount_paise - self.payment.refunded_paise

    @property
    def can_retry(self) -> bool:
        return retry_refusal(self.payment) is None

    def age(self, now: datetime | None = None) -> timedelta:
        return (now or utcnow()) - self.payment.created_at


def _reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not text:
        raise ValidationFailed("say why: the reason is kept in the audit log with your name")
    if len(text) > MAX_REASON:
        raise ValidationFailed(f"the reason is at most {MAX_REASON} characters")
    return text


def _view(session: Session, payment: GatewayPayment) -> PaymentView:
    order = session.get(GatewayOrder, payment.order_id)
    assert order is not None  # a foreign key
    return PaymentView(payment, order, session.get(Customer, order.customer_id))


def list_needing_attention(session: Session, *, limit: int = LIST_LIMIT) -> list[PaymentView]:
    """Captured and not vended, with money still held: refused vends not (fully) refunded. Oldest first:
    the longest a household has waited for its gas or its money comes first."""
    rows = session.execute(
        select(GatewayPayment, GatewayOrder, Customer)
        .join(GatewayOrder, GatewayOrder.id == GatewayPayment.order_id)
        .join(Customer, Customer.id == GatewayOrder.customer_id)
        .where(
            GatewayPayment.vend_id.is_(None),
            or_(
                GatewayPayment.status == "vend_failed",
                and_(
                    GatewayPayment.status == "partially_refunded",
                    GatewayPayment.refunded_paise < GatewayPayment.amount_paise,
                ),
            ),
        )
        .order_by(GatewayPayment.created_at, GatewayPayment.id)
        .limit(limit)
    ).all()
    return [PaymentView(p, o, c) for p, o, c in rows]


@dataclass(frozen=True)
class RefundRow:
    refund: GatewayRefund
    payment: GatewayPayment
    customer: Customer | None


def list_refunds(session: Session, *, limit: int = LIST_LIMIT) -> list[RefundRow]:
    """Every refund, newest first, whoever started it (this page, the API, or the gateway's dashboard)."""
    rows = session.execute(
        select(GatewayRefund, GatewayPayment, Customer)
        .join(GatewayPayment, GatewayPayment.id == GatewayRefund.payment_id)
        .join(GatewayOrder, GatewayOrder.id == GatewayPayment.order_id)
        .outerjoin(Customer, Customer.id == GatewayOrder.customer_id)
        .order_by(GatewayRefund.created_at.desc(), GatewayRefund.id.desc())
        .limit(limit)
    ).all()
    return [RefundRow(r, p, c) for r, p, c in rows]


def get_payment_view(session: Session, gateway_payment_id: str) -> PaymentView:
    return _view(session, get_payment(session, gateway_payment_id))


def list_payment_refunds(session: Session, payment: GatewayPayment) -> list[GatewayRefund]:
    return list(
        session.execute(
            select(GatewayRefund)
            .where(GatewayRefund.payment_id == payment.id)
            .order_by(GatewayRefund.created_at, GatewayRefund.id)
        ).scalars()
    )


def payment_history(session: Session, view: PaymentView) -> list[AuditEntry]:
    """The audit trail of the payment, its refunds and its vend: who did what, when and why."""
    ids = [str(view.payment.id), *(str(r.id) for r in list_payment_refunds(session, view.payment))]
    if view.payment.vend_id is not None:
        ids.append(str(view.payment.vend_id))
    return list(
        session.execute(
            select(AuditEntry).where(AuditEntry.entity_id.in_(ids)).order_by(AuditEntry.seq)
        ).scalars()
    )


# --- retry the vend --------------------------------------------------------------------------------------


def retry_refusal(payment: GatewayPayment) -> str | None:
    """Why a payment cannot be vended again, or None when it can."""
    if payment.vend_id is not None:
        return None  # a retry returns the vend it already has
    if payment.status != "vend_failed" or payment.refunded_paise:
        # Part or all of the money went back: vending the whole amount now would give gas for it twice.
        return (
            f"payment {payment.gateway_payment_id} is {payment.status.replace('_', ' ')}; "
            "only a payment with nothing refunded can be vended"
        )
    return None


@dataclass(frozen=True)
class RetryOutcome:
    view: PaymentView
    vend: Vend
    replayed: bool  # True: the payment had vended already (a double click); nothing new was written


def do_retry_vend(
    session: Session,
    *,
    gateway_payment_id: str,
    reason: str,
    master_key: bytes,
    now: datetime | None = None,
) -> RetryOutcome:
    """Vend a captured payment whose vend was refused, now that the cause is gone (the meter is active
    again, a new day's limit). The same vend request as at capture, with the same key: exactly once."""
    _reason(reason)
    order_id = session.execute(
        select(GatewayPayment.order_id).where(GatewayPayment.gateway_payment_id == gateway_payment_id)
    ).scalar_one_or_none()
    if order_id is None:
        raise UnknownPayment(f"no payment {gateway_payment_id}")
    # The order's lock first, as the callback and the webhook take it; then the payment, read afresh.
    order = session.execute(
        select(GatewayOrder).where(GatewayOrder.id == order_id).with_for_update()
    ).scalar_one()
    payment = get_payment(session, gateway_payment_id, lock=True)
    view = PaymentView(payment, order, session.get(Customer, order.customer_id))
    if payment.vend_id is not None:
        vend = session.get(Vend, payment.vend_id)
        assert vend is not None  # a foreign key
        return RetryOutcome(view, vend, replayed=True)
    refusal = retry_refusal(payment)
    if refusal is not None:
        raise PaymentRefused("payment_not_retryable", refusal)
    request = VendRequest(
        channel=Channel.UPI if payment.method == "upi" else Channel.ONLINE,
        amount_paise=payment.amount_paise,
        idempotency_key=f"{IDEMPOTENCY_PREFIX}{payment.gateway_payment_id}",
        consumer_number=order.consumer_number,
        payment_reference=payment.gateway_payment_id,
    )
    # A refusal (meter still suspended) raises here and the caller rolls back: nothing changes.
    vend = do_vend(session, request, master_key=master_key, now=now).vend
    payment.status = "captured"
    payment.vend_id = vend.id
    payment.vend_error = ""  # the refusal stays in the audit log, as the payment's earlier state
    session.flush()
    return RetryOutcome(view, vend, replayed=False)


# --- refund ----------------------------------------------------------------------------------------------


def new_refund_key() -> str:
    """The request key a refund form carries: fixed when the form is drawn, so submitting the same form
    twice refunds once. 36 characters: short enough to travel as the gateway's `receipt`."""
    return f"ops-{uuid.uuid4().hex}"


def do_refund_from_back_office(
    session: Session,
    gateway: PaymentGateway,
    *,
    gateway_payment_id: str,
    reason: str,
    request_key: str,
    amount_paise: int | None = None,
) -> RefundOutcome:
    """Refund a payment (all that remains, or `amount_paise`) through the gateway, once per form."""
    text = _reason(reason)
    if not request_key.startswith("ops-") or len(request_key) > MAX_REQUEST_KEY:
        raise ValidationFailed("the refund form is out of date: open the payment again")
    # Lock the payment before looking for the key, so a concurrent repeat of this form waits for the
    # first and then finds its refund instead of asking the gateway again.
    get_payment(session, gateway_payment_id, lock=True)
    return do_refund_payment(
        session,
        gateway,
        payment_id=gateway_payment_id,
        reason=text,
        request_key=request_key,
        amount_paise=amount_paise,
    )
