"""Back-office pages for payments needing attention (`/ops/payments`): money captured without a token,
its detail and history, the two ways out — retry the vend, or refund — and the list of refunds.

Who may do what:
- see the lists and a payment (VEND_VIEW): the CGD manager, back office and care;
- retry the vend (CUSTOMER_MANAGE or PAYMENTS_RECONCILE): care and back office. It moves no money out;
  it gives the household the gas it paid for, through the same vend and the same key as at capture;
- refund (PAYMENTS_RECONCILE): back office and the CGD manager only. Money leaves the CGD's account and
  must later match the gateway's settlement report, so it is the reconciling staff's decision, not a
  care agent's on the phone.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citygas.identity.rules import Permission
from citygas.payments.gateway import attention
from citygas.payments.gateway.service import MAX_REQUEST_KEY, gateway_for
from citygas.platform.errors import DomainError, ValidationFailed
from citygas.platform.money import AmountError, parse_rupees
from citygas.platform.time import utcnow
from citygas.platform.uow import UnitOfWork
from citygas.sts import group_token
from citygas.vending.models import Vend
from citygas.vending.service import vend_body
from citygas.web.deps import uow_with, verify_csrf
from citygas.web.render import render

router = APIRouter(prefix="/ops/payments", dependencies=[Depends(verify_csrf)], include_in_schema=False)

P = Permission
ViewUow = Annotated[UnitOfWork, Depends(uow_with(P.VEND_VIEW))]
RetryUow = Annotated[UnitOfWork, Depends(uow_with(P.CUSTOMER_MANAGE, P.PAYMENTS_RECONCILE))]
RefundUow = Annotated[UnitOfWork, Depends(uow_with(P.PAYMENTS_RECONCILE))]


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


@router.get("", response_class=HTMLResponse)
def attention_list(request: Request, uow: ViewUow) -> Response:
    now = utcnow()
    rows = attention.list_needing_attention(uow.session)
    return render(
        request,
        "payments/attention.html",
        rows=[(v, _age(v.age(now).total_seconds())) for v in rows],
    )


@router.get("/refunds", response_class=HTMLResponse)
def refunds_list(request: Request, uow: ViewUow) -> Response:
    return render(request, "payments/refunds.html", rows=attention.list_refunds(uow.session))


def _detail(
    request: Request, uow: UnitOfWork, payment_id: str, *, status_code: int = 200, **extra: Any
) -> Response:
    view = attention.get_payment_view(uow.session, payment_id)
    principal = getattr(request.state, "principal", None)
    vend = None
    if view.payment.vend_id is not None:
        row = uow.session.get(Vend, view.payment.vend_id)
        vend = vend_body(uow.session, row) if row is not None else None
    context: dict[str, Any] = {
        "view": view,
        "age": _age(view.age().total_seconds()),
        "refunds": attention.list_payment_refunds(uow.session, view.payment),
        "history": attention.payment_history(uow.session, view),
        "vend": vend,
        "grouped": [group_token(t["token"]) for t in vend["tokens"]] if vend else [],
        "retry_refusal": attention.retry_refusal(view.payment) if view.payment.vend_id is None else None,
        "may_retry": principal is not None
        and (principal.can(P.CUSTOMER_MANAGE) or principal.can(P.PAYMENTS_RECONCILE)),
        "may_refund": principal is not None and principal.can(P.PAYMENTS_RECONCILE),
        "refund_key": attention.new_refund_key(),
        "reason": "",
        "amount": "",
    }
    context.update(extra)
    return render(request, "payments/detail.html", status_code=status_code, **context)


@router.get("/{payment_id}", response_class=HTMLResponse)
def payment_detail(request: Request, payment_id: str, uow: ViewUow) -> Response:
    return _detail(request, uow, payment_id)


@router.post("/{payment_id}/retry", response_class=HTMLResponse)
def retry_vend(
    request: Request,
    payment_id: str,
    uow: RetryUow,
    reason: Annotated[str, Form(max_length=attention.MAX_REASON)] = "",
) -> Response:
    settings = request.app.state.settings
    try:
        outcome = attention.do_retry_vend(
            uow.session,
            gateway_payment_id=payment_id,
            reason=reason,
            master_key=settings.master_key_bytes,
        )
    except DomainError as exc:
        if exc.status == 404:
            raise
        uow.rollback()  # the refused vend's rows go; the page is drawn from what is committed
        return _detail(request, uow, payment_id, status_code=exc.status, error=exc.detail, reason=reason)
    uow.because(" ".join(reason.split())).commit()
    flash = "vended" if not outcome.replayed else "already_vended"
    return RedirectResponse(f"/ops/payments/{payment_id}?done={flash}", status_code=303)


@router.post("/{payment_id}/refund", response_class=HTMLResponse)
def refund(
    request: Request,
    payment_id: str,
    uow: RefundUow,
    request_key: Annotated[str, Form(max_length=MAX_REQUEST_KEY)],
    reason: Annotated[str, Form(max_length=attention.MAX_REASON)] = "",
    amount: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Refund what remains (amount left empty) or part of it, in rupees."""
    settings = request.app.state.settings
    try:
        paise: int | None = None
        if amount.strip():
            try:
                paise = int(parse_rupees(amount))
            except AmountError as exc:
                raise ValidationFailed(f"amount: {exc}") from exc
        gateway = gateway_for(
            uow.session, master_key=settings.master_key_bytes, simulator_enabled=settings.simulator_enabled
        )
        # A gateway that refuses or cannot be reached is a DomainError too (502): shown, nothing kept.
        attention.do_refund_from_back_office(
            uow.session,
            gateway,
            gateway_payment_id=payment_id,
            reason=reason,
            request_key=request_key,
            amount_paise=paise,
        )
    except DomainError as exc:
        if exc.status == 404:
            raise
        uow.rollback()
        return _detail(
            request, uow, payment_id, status_code=exc.status, error=exc.detail, reason=reason, amount=amount
        )
    uow.because(" ".join(reason.split())).commit()
    return RedirectResponse(f"/ops/payments/{payment_id}?done=refunded", status_code=303)
