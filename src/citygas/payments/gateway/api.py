"""The online-payment API: orders for the customer app and the CGD's own apps, their status, refunds,
and the gateway's webhook.

The webhook route has no login: the gateway proves itself with `X-Razorpay-Signature`, an HMAC of the
raw body under the tenant's webhook secret. The URL names the tenant, so a CGD's secret is only ever
checked against that CGD's deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from citygas.customers.households import household_phone
from citygas.customers.models import Customer
from citygas.identity.principal import Principal
from citygas.identity.rules import Permission
from citygas.payments.gateway.models import GatewayOrder, GatewayPayment
from citygas.payments.gateway.service import (
    WebhookOutcome,
    do_create_order,
    do_receive_webhook,
    do_refund_payment,
    gateway_for,
    get_order,
    list_order_payments,
)
from citygas.platform.context import Actor
from citygas.platform.errors import DomainError, NotFound
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import UnitOfWork
from citygas.vending.models import Vend
from citygas.vending.service import vend_body
from citygas.web.deps import get_db, uow_with, verify_csrf

router = APIRouter(prefix="/api/v1/payments/gateway", tags=["payments"], dependencies=[Depends(verify_csrf)])
# No CSRF and no login: the signature is the authentication (see the module's note).
webhook_router = APIRouter(prefix="/api/v1/payments/gateway", tags=["payments"])

# Who may ask a customer to pay: the CGD's own apps (vend scope), care and back office for a caller on
# the phone, and a household for its own connections.
Payer = Annotated[
    UnitOfWork,
    Depends(uow_with(Permission.VEND_CREATE, Permission.CUSTOMER_MANAGE, Permission.CUSTOMER_SELF)),
]
Viewer = Annotated[
    UnitOfWork,
    Depends(
        uow_with(
            Permission.VEND_VIEW, Permission.VEND_CREATE, Permission.CUSTOMER_MANAGE, Permission.CUSTOMER_SELF
        )
    ),
]
# Money out of the CGD's account: whoever reconciles it with the bank (back office, CGD manager), as on
# the back office's attention page; a care agent raises it with them.
Refunder = Annotated[UnitOfWork, Depends(uow_with(Permission.PAYMENTS_RECONCILE))]

GATEWAY_ACTOR = Actor(kind="gateway", id=None, label="payment gateway webhook")
MAX_WEBHOOK_BYTES = 1_000_000


def access_order(session: Session, principal: Principal | None, gateway_order_id: str) -> GatewayOrder:
    order = get_order(session, gateway_order_id)
    phone = household_phone(session, principal)
    if phone is not None:
        customer = session.get(Customer, order.customer_id)
        if customer is None or customer.phone != phone:
            raise NotFound(f"no order {gateway_order_id}")  # another household's order looks unknown
    return order


def checkout_path(order: GatewayOrder) -> str:
    return f"/pay/checkout/{order.gateway_order_id}"


class OrderIn(BaseModel):
    consumer_number: str = Field(min_length=1, max_length=24)
    amount_paise: int = Field(description="whole paise: ₹500 is 50000")


def order_json(session: Session, order: GatewayOrder, *, key_id: str = "") -> dict[str, Any]:
    payments: list[dict[str, Any]] = []
    for payment in list_order_payments(session, order):
        vend = session.get(Vend, payment.vend_id) if payment.vend_id else None
        payments.append(payment_json(session, payment, vend))
    return {
        "order_id": order.gateway_order_id,
        "gateway": order.gateway,
        "key_id": key_id or None,
        "consumer_number": order.consumer_number,
        "amount_paise": order.amount_paise,
        "currency": order.currency,
        "status": order.status,
        "checkout_url": checkout_path(order),
        "created_at": order.created_at.isoformat(),
        "payments": payments,
    }


def payment_json(session: Session, payment: GatewayPayment, vend: Vend | None) -> dict[str, Any]:
    return {
        "payment_id": payment.gateway_payment_id,
        "method": payment.method,
        "status": payment.status,
        "amount_paise": payment.amount_paise,
        "refunded_paise": payment.refunded_paise,
        "vend_error": payment.vend_error or None,
        "vend": vend_body(session, vend) if vend is not None else None,
    }


def _principal(request: Request) -> Principal | None:
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal


@router.post("/orders", status_code=201)
def create_order(request: Request, body: OrderIn, uow: Payer) -> JSONResponse:
    """Create a gateway order for a top-up; open `checkout_url` (or Razorpay Checkout with `key_id` and
    `order_id`) to pay it. Refused before any money is asked for: `amount_out_of_range`,
    `unknown_consumer`, `no_active_meter`."""
    settings = request.app.state.settings
    gateway = gateway_for(
        uow.session, master_key=settings.master_key_bytes, simulator_enabled=settings.simulator_enabled
    )
    order = do_create_order(
        uow.session,
        gateway,
        consumer_number=body.consumer_number,
        amount_paise=body.amount_paise,
        household_phone=household_phone(uow.session, _principal(request)),
    )
    uow.commit()
    return JSONResponse(order_json(uow.session, order, key_id=gateway.key_id), status_code=201)


@router.get("/orders/{order_id}")
def read_order(request: Request, order_id: str, uow: Viewer) -> dict[str, Any]:
    """The order, its payments and, once vended, the receipt with the tokens."""
    return order_json(uow.session, access_order(uow.session, _principal(request), order_id))


class RefundIn(BaseModel):
    reason: str = Field(min_length=1, max_length=300)
    amount_paise: int | None = Field(default=None, description="omit for the whole refundable amount")


@router.post("/payments/{payment_id}/refunds", status_code=201)
def refund_payment(
    request: Request,
    payment_id: str,
    body: RefundIn,
    uow: Refunder,
    idempotency_key: Annotated[str, Header(min_length=1, max_length=40)],
) -> JSONResponse:
    """Refund a payment through the gateway. If it had vended, the gas credit stays on the meter and the
    amount becomes debt recovered from the next top-up (never a negative token)."""
    settings = request.app.state.settings
    gateway = gateway_for(
        uow.session, master_key=settings.master_key_bytes, simulator_enabled=settings.simulator_enabled
    )
    outcome = do_refund_payment(
        uow.session,
        gateway,
        payment_id=payment_id,
        reason=body.reason,
        request_key=idempotency_key,
        amount_paise=body.amount_paise,
    )
    uow.because(body.reason).commit()
    refund = outcome.refund
    return JSONResponse(
        {
            "refund_id": refund.gateway_refund_id,
            "payment_id": outcome.payment.gateway_payment_id,
            "amount_paise": refund.amount_paise,
            "status": refund.status,
            "payment_status": outcome.payment.status,
            "debt_posted": refund.ledger_entry_id is not None,
        },
        status_code=200 if outcome.replayed else 201,
    )


def receive_webhook_in_tenant(
    request: Request, tenant_slug: str, body: bytes, signature: str, event_id: str
) -> WebhookOutcome:
    db = get_db(request)
    settings = request.app.state.settings
    with db.system(read_only=True) as uow:
        tenant = uow.session.execute(
            select(Tenant).where(Tenant.slug == tenant_slug, Tenant.active.is_(True), Tenant.kind == "cgd")
        ).scalar_one_or_none()
        tenant_id = tenant.id if tenant is not None else None
    if tenant_id is None:
        raise NotFound(f"no gas company {tenant_slug}")
    request_id = getattr(request.state, "request_id", None)
    with db.unit_of_work(tenant=tenant_id, actor=GATEWAY_ACTOR, request_id=request_id) as uow:
        gateway = gateway_for(
            uow.session, master_key=settings.master_key_bytes, simulator_enabled=settings.simulator_enabled
        )
        outcome = do_receive_webhook(
            uow.session,
            gateway,
            body=body,
            signature=signature,
            event_id=event_id,
            master_key=settings.master_key_bytes,
        )
        uow.commit()
    return outcome


@webhook_router.post("/{tenant_slug}/webhook")
async def receive_webhook(
    request: Request,
    tenant_slug: str,
    x_razorpay_signature: Annotated[str, Header(max_length=200)] = "",
    x_razorpay_event_id: Annotated[str, Header(max_length=100)] = "",
) -> JSONResponse:
    """The gateway's webhook (`payment.captured`, `order.paid`, `refund.processed`, `payment.failed`).
    Set it up at the gateway as `<base URL>/api/v1/payments/gateway/<tenant slug>/webhook` with the
    tenant's webhook secret. A bad signature is `400 bad_signature` and changes nothing."""
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        raise DomainError("a webhook body is at most 1 MB")
    outcome = await run_in_threadpool(
        receive_webhook_in_tenant, request, tenant_slug, body, x_razorpay_signature, x_razorpay_event_id
    )
    return JSONResponse(outcome.body())
