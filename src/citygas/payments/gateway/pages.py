"""Paying online in the browser: start a top-up, the checkout (the simulator's own page, or Razorpay
Checkout), and the return page that verifies the payment and shows the receipt with the tokens.

The return page (`/pay/<tenant slug>/return`) needs no login: the payer's browser may come back from the
gateway without its session cookie (a cross-site POST), and it is the verified signature — which only the
gateway and the payer's browser hold — that authorises showing this payment's receipt."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from citygas.customers.households import connections_of_phone, household_phone
from citygas.customers.models import Customer
from citygas.identity.principal import Principal
from citygas.identity.rules import Permission
from citygas.payments.gateway.api import GATEWAY_ACTOR, access_order
from citygas.payments.gateway.ports import GatewayError
from citygas.payments.gateway.service import (
    Settlement,
    do_confirm_checkout,
    do_create_order,
    gateway_for,
)
from citygas.payments.gateway.simulator import GatewaySimulator
from citygas.platform.errors import DomainError, NotFound, ValidationFailed
from citygas.platform.money import AmountError, parse_rupees
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import UnitOfWork
from citygas.sts import group_token
from citygas.vending.service import vend_body
from citygas.web.deps import get_db, uow_with, verify_csrf
from citygas.web.render import render

router = APIRouter(prefix="/pay", dependencies=[Depends(verify_csrf)], include_in_schema=False)
# The gateway sends the payer back here; the signature, not a session, authorises it (see above).
return_router = APIRouter(prefix="/pay", include_in_schema=False)

Payer = Annotated[
    UnitOfWork,
    Depends(uow_with(Permission.CUSTOMER_SELF, Permission.CUSTOMER_MANAGE, Permission.VEND_CREATE)),
]
METHODS = {"card": "Card", "upi": "UPI (pay with any UPI app: simulated)", "fail": "Fail the payment"}


def _principal(request: Request) -> Principal | None:
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal


def _own_connections(uow: UnitOfWork, request: Request) -> list[Customer]:
    phone = household_phone(uow.session, _principal(request))
    return [] if phone is None else connections_of_phone(uow.session, phone)


@router.get("/new", response_class=HTMLResponse)
def new_payment(request: Request, uow: Payer, consumer_number: str = "") -> Response:
    return render(
        request,
        "pay/new.html",
        connections=_own_connections(uow, request),
        consumer_number=consumer_number,
        amount="",
    )


@router.post("/new")
def start_payment(
    request: Request,
    uow: Payer,
    consumer_number: Annotated[str, Form(max_length=24)],
    amount: Annotated[str, Form(max_length=16)],
) -> Response:
    settings = request.app.state.settings
    try:
        try:
            paise = parse_rupees(amount)
        except AmountError as exc:
            raise ValidationFailed(str(exc)) from exc
        gateway = gateway_for(
            uow.session, master_key=settings.master_key_bytes, simulator_enabled=settings.simulator_enabled
        )
        order = do_create_order(
            uow.session,
            gateway,
            consumer_number=consumer_number,
            amount_paise=paise,
            household_phone=household_phone(uow.session, _principal(request)),
        )
    except DomainError as exc:
        return render(
            request,
            "pay/new.html",
            status_code=exc.status,
            error=exc.detail,
            connections=_own_connections(uow, request),
            consumer_number=consumer_number,
            amount=amount,
        )
    uow.commit()
    return RedirectResponse(f"/pay/checkout/{order.gateway_order_id}", status_code=303)


def _tenant_slug(request: Request) -> str:
    principal = _principal(request)
    assert principal is not None  # uow_with required a caller
    db = get_db(request)
    with db.system(read_only=True) as system:
        tenant = system.session.get(Tenant, principal.tenant_id)
        assert tenant is not None
        return tenant.slug


@router.get("/checkout/{order_id}", response_class=HTMLResponse)
def checkout(request: Request, order_id: str, uow: Payer, method: str = "") -> Response:
    settings = request.app.state.settings
    order = access_order(uow.session, _principal(request), order_id)
    gateway = gateway_for(
        uow.session, master_key=settings.master_key_bytes, simulator_enabled=settings.simulator_enabled
    )
    customer = uow.session.get(Customer, order.customer_id)
    template = (
        "pay/checkout_sim.html" if isinstance(gateway, GatewaySimulator) else "pay/checkout_razorpay.html"
    )
    return render(
        request,
        template,
        order=order,
        customer=customer,
        methods=METHODS,
        key_id=gateway.key_id,
        return_url=f"{settings.base_url}/pay/{_tenant_slug(request)}/return",
        preselect=method if method in METHODS else "",
    )


@router.post("/checkout/{order_id}")
def simulated_checkout(
    request: Request,
    order_id: str,
    uow: Payer,
    method: Annotated[str, Form(max_length=8)],
    vpa: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The simulator's checkout: the payer chose card, UPI or failure. A real gateway's page does this."""
    settings = request.app.state.settings
    order = access_order(uow.session, _principal(request), order_id)
    gateway = gateway_for(
        uow.session, master_key=settings.master_key_bytes, simulator_enabled=settings.simulator_enabled
    )
    if not isinstance(gateway, GatewaySimulator):
        raise NotFound("this gas company takes payments at its gateway's own checkout")
    if method not in METHODS:
        raise ValidationFailed("choose card, UPI or fail")
    try:
        paid = gateway.pay(
            order.gateway_order_id,
            method="upi" if method == "upi" else "card",
            vpa=vpa.strip(),
            succeed=method != "fail",
        )
    except GatewayError as exc:
        raise ValidationFailed(exc.detail) from exc
    uow.commit()
    query: dict[str, str] = {"razorpay_order_id": paid.order_id}
    if paid.signature:
        query |= {"razorpay_payment_id": paid.payment_id, "razorpay_signature": paid.signature}
    else:
        query |= {"error_description": paid.error_description, "error_payment_id": paid.payment_id}
    return RedirectResponse(f"/pay/{_tenant_slug(request)}/return?{urlencode(query)}", status_code=303)


def _confirm(
    request: Request, tenant_slug: str, order_id: str, payment_id: str, signature: str, error: str
) -> Response:
    if error or not payment_id:
        return render(
            request,
            "pay/result.html",
            status_code=402,
            ok=False,
            error=error or "The payment was not completed.",
            order_id=order_id,
        )
    db = get_db(request)
    settings = request.app.state.settings
    with db.system(read_only=True) as system:
        tenant = system.session.execute(
            select(Tenant).where(Tenant.slug == tenant_slug, Tenant.active.is_(True))
        ).scalar_one_or_none()
        tenant_id = tenant.id if tenant is not None else None
    if tenant_id is None:
        raise NotFound(f"no gas company {tenant_slug}")
    with db.unit_of_work(
        tenant=tenant_id, actor=GATEWAY_ACTOR, request_id=getattr(request.state, "request_id", None)
    ) as uow:
        gateway = gateway_for(
            uow.session, master_key=settings.master_key_bytes, simulator_enabled=settings.simulator_enabled
        )
        settled: Settlement = do_confirm_checkout(
            uow.session,
            gateway,
            order_id=order_id,
            payment_id=payment_id,
            signature=signature,
            master_key=settings.master_key_bytes,
        )
        receipt = vend_body(uow.session, settled.vend) if settled.vend is not None else None
        uow.commit()
    # Rendered after the unit of work is closed: the page looks up the caller, which must not wait for
    # this transaction's write lock (SQLite).
    return render(
        request,
        "pay/result.html",
        ok=True,
        order=settled.order,
        payment=settled.payment,
        receipt=receipt,
        grouped=[group_token(t["token"]) for t in receipt["tokens"]] if receipt else [],
    )


@return_router.get("/{tenant_slug}/return", response_class=HTMLResponse)
def checkout_return(
    request: Request,
    tenant_slug: str,
    razorpay_order_id: str = "",
    razorpay_payment_id: str = "",
    razorpay_signature: str = "",
    error_description: str = "",
) -> Response:
    return _confirm(
        request, tenant_slug, razorpay_order_id, razorpay_payment_id, razorpay_signature, error_description
    )


@return_router.post("/{tenant_slug}/return", response_class=HTMLResponse)
def checkout_return_posted(
    request: Request,
    tenant_slug: str,
    razorpay_order_id: Annotated[str, Form(max_length=64)] = "",
    razorpay_payment_id: Annotated[str, Form(max_length=64)] = "",
    razorpay_signature: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Razorpay Checkout's `callback_url` (redirect mode) posts the three fields here."""
    return _confirm(request, tenant_slug, razorpay_order_id, razorpay_payment_id, razorpay_signature, "")
