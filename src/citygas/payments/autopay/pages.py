"""Auto top-up in the customer app (/app/autopay) and the mandate approval page (/pay/mandate/…).

The approval page stands in for the UPI app when the CGD runs on the gateway simulator (the household
"approves with its UPI PIN" there); with a Razorpay account it opens Razorpay Checkout for the mandate.
Either way the browser comes back to /app/autopay/<mandate>/return with the gateway's signature, which is
verified before anything is believed; the job also asks the gateway, so a household that closes the
browser still ends up with a working (or a declined) mandate.

Only households reach these pages, and only for connections registered to their own phone: another
household's mandate answers exactly like an unknown one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.identity.principal import Principal
from citygas.identity.rules import Permission
from citygas.payments.autopay.models import AutopayMandate
from citygas.payments.autopay.rules import (
    MANDATE,
    MINIMUM_TOPUP_PAISE,
    NO_AFA_LIMIT_PAISE,
    OPEN_STATES,
    AutopayRefused,
    mask_vpa,
    notice_for,
)
from citygas.payments.autopay.service import (
    config_from,
    debits_of,
    do_cancel_mandate,
    do_change_terms,
    do_confirm_mandate,
    do_pause_mandate,
    do_refresh_authorisation,
    do_resume_mandate,
    do_start_mandate,
    get_mandate,
    household_connections,
    mandates_of,
)
from citygas.payments.gateway.ports import GatewayError, PaymentGateway
from citygas.payments.gateway.service import gateway_for
from citygas.payments.gateway.simulator import GatewaySimulator
from citygas.platform import workflow
from citygas.platform.errors import DomainError, NotFound, ValidationFailed
from citygas.platform.money import AmountError, parse_rupees
from citygas.platform.uow import UnitOfWork
from citygas.web.deps import Requires, get_db, uow_with, verify_csrf
from citygas.web.i18n import translate
from citygas.web.render import render, request_language

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

Household = Annotated[UnitOfWork, Depends(uow_with(Permission.CUSTOMER_SELF))]
CustomerSelf = Annotated[Principal, Depends(Requires(Permission.CUSTOMER_SELF))]

AMOUNT_PRESETS_RUPEES = (500, 1000, 2000)
THRESHOLD_PRESETS_RUPEES = (100, 200, 500)
DEFAULT_MAX_RUPEES = 2000
# What a finished action says at the top of the page (English; the page translates it).
DONE = {
    "active": "Auto top-up is on.",
    "waiting": "We are waiting for your UPI app to confirm the approval.",
    "declined": "The mandate was not approved, so auto top-up is off.",
    "paused": "Auto top-up is paused. No money will be taken until you resume it.",
    "resumed": "Auto top-up is on again.",
    "cancelled": "Auto top-up is cancelled and the mandate is revoked.",
    "changed": "Your auto top-up settings are saved.",
    "fail_next": "Simulator: the next debit of this mandate will fail.",
}
STATE_NAMES = {s.name: s.label for s in MANDATE.states}
DEBIT_STATES = {
    "notified": "Notice sent",
    "debiting": "Being debited",
    "succeeded": "Topped up",
    "failed": "Failed",
    "vend_failed": "Debited, not topped up: refunded",
    "skipped": "Not debited",
}


@dataclass(frozen=True)
class Connection:  # the shape `app/_connection_picker.html` reads
    customer: Customer


def _phone(session: Session, principal: Principal) -> str:
    own = session.get(Customer, principal.id)
    return own.phone if own is not None else "-"


def _gateway(request: Request, session: Session) -> PaymentGateway:
    settings = request.app.state.settings
    return gateway_for(
        session, master_key=settings.master_key_bytes, simulator_enabled=settings.simulator_enabled
    )


def _own_customer(session: Session, principal: Principal, consumer_number: str) -> Customer:
    for customer in household_connections(session, _phone(session, principal)):
        if customer.consumer_number == consumer_number.strip().upper():
            return customer
    raise AutopayRefused("unknown_consumer", f"no connection with consumer number {consumer_number}")


def _paise(text: str, preset: str, what: str) -> int:
    """A rupee amount typed (wins) or chosen from the presets, as paise; never a float."""
    chosen = text.strip() or preset.strip()
    if not chosen:
        raise ValidationFailed(f"choose or type the {what}")
    try:
        return int(parse_rupees(chosen))
    except AmountError as exc:
        raise ValidationFailed(f"{what}: {exc}") from exc


def _page(
    request: Request,
    session: Session,
    principal: Principal,
    consumer_number: str,
    *,
    status_code: int = 200,
    error: str | None = None,
    form: dict[str, str] | None = None,
    done: str = "",
) -> Response:
    connections = [Connection(c) for c in household_connections(session, _phone(session, principal))]
    chosen = next((c for c in connections if c.customer.consumer_number == consumer_number), None)
    chosen = chosen or (connections[0] if connections else None)
    context: dict[str, Any] = {"mandate": None, "waiting": None, "debits": [], "history": []}
    if chosen is not None:
        mandates = mandates_of(session, chosen.customer.id)
        live = [m for m in mandates if m.state in ("active", "paused")]
        waiting = [m for m in mandates if m.state in ("created", "pending_authorisation")]
        context["mandate"] = live[0] if live else (mandates[0] if mandates else None)
        context["waiting"] = waiting[0] if waiting and waiting[0] is not context["mandate"] else None
        context["debits"] = debits_of(session, [m.id for m in mandates])
        if context["mandate"] is not None:
            context["history"] = workflow.history(session, MANDATE.name, context["mandate"].id)
    settings = request.app.state.settings
    gateway_name = "simulator" if settings.simulator_enabled else "razorpay"
    notice = notice_for(gateway_name, config_from(settings))
    return render(
        request,
        "app/autopay.html",
        status_code=status_code,
        tab="topup",
        connections=connections,
        chosen=chosen,
        error=error,
        flash=translate(request_language(request), DONE[done]) if done in DONE else None,
        form=form or {},
        amount_presets=AMOUNT_PRESETS_RUPEES,
        threshold_presets=THRESHOLD_PRESETS_RUPEES,
        default_max_rupees=DEFAULT_MAX_RUPEES,
        cap_paise=NO_AFA_LIMIT_PAISE,
        minimum_paise=MINIMUM_TOPUP_PAISE,
        notice_hours=int(notice.total_seconds() // 3600),
        notice_minutes=int(notice.total_seconds() // 60),
        open_states=OPEN_STATES,
        state_names=STATE_NAMES,
        debit_states=DEBIT_STATES,
        masked=mask_vpa,
        **context,
    )


def _back(mandate: AutopayMandate, done: str) -> RedirectResponse:
    query = urlencode({"c": mandate.consumer_number, "done": done})
    return RedirectResponse(f"/app/autopay?{query}", status_code=303)


# --- the household's page ----------------------------------------------------------------------------


@router.get("/app/autopay", response_class=HTMLResponse)
def autopay_page(
    request: Request, uow: Household, principal: CustomerSelf, c: str = "", done: str = ""
) -> Response:
    return _page(request, uow.session, principal, c, done=done)


@router.post("/app/autopay")
def start_autopay(
    request: Request,
    uow: Household,
    principal: CustomerSelf,
    consumer_number: Annotated[str, Form(max_length=24)],
    threshold_preset: Annotated[str, Form(max_length=8)] = "",
    threshold: Annotated[str, Form(max_length=16)] = "",
    amount_preset: Annotated[str, Form(max_length=8)] = "",
    amount: Annotated[str, Form(max_length=16)] = "",
    max_amount: Annotated[str, Form(max_length=16)] = "",
    vpa: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    form = {"threshold": threshold, "amount": amount, "max_amount": max_amount, "vpa": vpa}
    session = uow.session
    try:
        customer = _own_customer(session, principal, consumer_number)
        amount_paise = _paise(amount, amount_preset, "top-up amount")
        mandate = do_start_mandate(
            session,
            _gateway(request, session),
            customer=customer,
            threshold_paise=_paise(threshold, threshold_preset, "low-balance threshold"),
            amount_paise=amount_paise,
            max_amount_paise=_paise(max_amount, "", "maximum per debit")
            if max_amount.strip()
            else max(amount_paise, DEFAULT_MAX_RUPEES * 100),
            vpa=vpa,
            config=config_from(request.app.state.settings),
        )
    except DomainError as exc:
        session.rollback()
        return _page(
            request, session, principal, consumer_number, status_code=exc.status, error=exc.detail, form=form
        )
    uow.commit()
    return RedirectResponse(f"/pay/mandate/{mandate.id}", status_code=303)


def _act(
    request: Request, uow: UnitOfWork, principal: Principal, mandate_id: uuid.UUID, action: str
) -> Response:
    session = uow.session
    mandate = get_mandate(session, mandate_id, household_phone=_phone(session, principal), lock=True)
    try:
        if action == "pause":
            do_pause_mandate(session, mandate=mandate)
        elif action == "resume":
            do_resume_mandate(session, mandate=mandate)
        else:
            do_cancel_mandate(session, _gateway(request, session), mandate=mandate)
    except DomainError as exc:
        session.rollback()
        return _page(
            request, session, principal, mandate.consumer_number, status_code=exc.status, error=exc.detail
        )
    uow.commit()
    return _back(mandate, {"pause": "paused", "resume": "resumed"}.get(action, "cancelled"))


@router.post("/app/autopay/{mandate_id}/pause")
def pause_autopay(
    request: Request, uow: Household, principal: CustomerSelf, mandate_id: uuid.UUID
) -> Response:
    return _act(request, uow, principal, mandate_id, "pause")


@router.post("/app/autopay/{mandate_id}/resume")
def resume_autopay(
    request: Request, uow: Household, principal: CustomerSelf, mandate_id: uuid.UUID
) -> Response:
    return _act(request, uow, principal, mandate_id, "resume")


@router.post("/app/autopay/{mandate_id}/cancel")
def cancel_autopay(
    request: Request, uow: Household, principal: CustomerSelf, mandate_id: uuid.UUID
) -> Response:
    return _act(request, uow, principal, mandate_id, "cancel")


@router.post("/app/autopay/{mandate_id}/change")
def change_autopay(
    request: Request,
    uow: Household,
    principal: CustomerSelf,
    mandate_id: uuid.UUID,
    threshold: Annotated[str, Form(max_length=16)],
    amount: Annotated[str, Form(max_length=16)],
    max_amount: Annotated[str, Form(max_length=16)],
) -> Response:
    session = uow.session
    mandate = get_mandate(session, mandate_id, household_phone=_phone(session, principal), lock=True)
    try:
        change = do_change_terms(
            session,
            _gateway(request, session),
            mandate=mandate,
            threshold_paise=_paise(threshold, "", "low-balance threshold"),
            amount_paise=_paise(amount, "", "top-up amount"),
            max_amount_paise=_paise(max_amount, "", "maximum per debit"),
            config=config_from(request.app.state.settings),
        )
    except DomainError as exc:
        session.rollback()
        form = {"threshold": threshold, "amount": amount, "max_amount": max_amount}
        return _page(
            request,
            session,
            principal,
            mandate.consumer_number,
            status_code=exc.status,
            error=exc.detail,
            form=form,
        )
    uow.commit()
    if change.new_mandate is not None:  # a new maximum: the payer approves a new mandate
        return RedirectResponse(f"/pay/mandate/{change.new_mandate.id}", status_code=303)
    return _back(mandate, "changed")


@router.get("/app/autopay/{mandate_id}/return")
def autopay_return(
    request: Request,
    principal: CustomerSelf,
    mandate_id: uuid.UUID,
    razorpay_order_id: str = "",
    razorpay_payment_id: str = "",
    razorpay_signature: str = "",
    error_description: str = "",
) -> Response:
    """Back from the UPI app (the simulator's page or Razorpay Checkout). A GET that writes, as the
    payment return does: the browser arrives by redirect, and the signature is what is trusted."""
    db = get_db(request)
    with db.unit_of_work(
        tenant=principal.tenant_id,
        actor=principal.actor,
        request_id=getattr(request.state, "request_id", None),
    ) as uow:
        session = uow.session
        mandate = get_mandate(session, mandate_id, household_phone=_phone(session, principal), lock=True)
        gateway = _gateway(request, session)
        if razorpay_payment_id and razorpay_signature and not error_description:
            do_confirm_mandate(
                session,
                gateway,
                mandate=mandate,
                order_id=razorpay_order_id,
                payment_id=razorpay_payment_id,
                signature=razorpay_signature,
            )
        else:  # declined or abandoned: the gateway says which
            do_refresh_authorisation(
                session, gateway, mandate=mandate, config=config_from(request.app.state.settings)
            )
        uow.commit()
        state = mandate.state
    outcome = {"active": "active", "pending_authorisation": "waiting"}.get(state, "declined")
    return _back(mandate, outcome)


# --- the approval page: the simulated UPI app, or Razorpay Checkout ------------------------------------


def _waiting_mandate(session: Session, principal: Principal, mandate_id: uuid.UUID) -> AutopayMandate:
    return get_mandate(session, mandate_id, household_phone=_phone(session, principal))


@router.get("/pay/mandate/{mandate_id}", response_class=HTMLResponse)
def mandate_approval(
    request: Request, uow: Household, principal: CustomerSelf, mandate_id: uuid.UUID
) -> Response:
    session = uow.session
    mandate = _waiting_mandate(session, principal, mandate_id)
    gateway = _gateway(request, session)
    customer = session.get(Customer, mandate.customer_id)
    if isinstance(gateway, GatewaySimulator):
        return render(
            request,
            "pay/mandate_sim.html",
            mandate=mandate,
            customer=customer,
            key_id=gateway.key_id,
            order=gateway.mandate_order(mandate.authorisation_order_id)
            if mandate.authorisation_order_id
            else None,
            masked=mask_vpa,
        )
    return render(
        request,
        "pay/mandate_razorpay.html",
        mandate=mandate,
        customer=customer,
        key_id=gateway.key_id,
        return_url=f"/app/autopay/{mandate.id}/return",
    )


def _simulator(request: Request, session: Session) -> GatewaySimulator:
    gateway = _gateway(request, session)
    if not isinstance(gateway, GatewaySimulator):
        raise NotFound("this gas company takes mandates at its gateway's own page")
    return gateway


@router.post("/pay/mandate/{mandate_id}")
def simulated_approval(
    request: Request,
    uow: Household,
    principal: CustomerSelf,
    mandate_id: uuid.UUID,
    decision: Annotated[str, Form(max_length=8)],
    vpa: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The simulated UPI app: the payer approves with the UPI PIN, or declines."""
    session = uow.session
    mandate = _waiting_mandate(session, principal, mandate_id)
    simulator = _simulator(request, session)
    if decision not in ("approve", "decline"):
        raise ValidationFailed("approve or decline the mandate")
    if mandate.state != "pending_authorisation":
        raise ValidationFailed("this mandate is not waiting for approval")
    try:
        outcome = simulator.approve_mandate(
            mandate.authorisation_order_id, vpa=vpa.strip() or mandate.vpa, approve=decision == "approve"
        )
    except GatewayError as exc:
        raise ValidationFailed(exc.detail) from exc
    uow.commit()
    query = {"razorpay_order_id": outcome.order_id}
    if outcome.signature:
        query |= {"razorpay_payment_id": outcome.payment_id, "razorpay_signature": outcome.signature}
    else:
        query |= {"error_description": outcome.error_description}
    return RedirectResponse(f"/app/autopay/{mandate.id}/return?{urlencode(query)}", status_code=303)


@router.post("/pay/mandate/{mandate_id}/fail-next")
def simulate_failing_debit(
    request: Request,
    uow: Household,
    principal: CustomerSelf,
    mandate_id: uuid.UUID,
    reason: Annotated[str, Form(max_length=120)] = "",
) -> Response:
    """Demo control of the simulated payer's bank: decline this mandate's next debit with `reason`."""
    session = uow.session
    mandate = _waiting_mandate(session, principal, mandate_id)
    simulator = _simulator(request, session)
    if not mandate.token_id:
        raise ValidationFailed("this mandate has not been approved yet")
    simulator.fail_next_debit(mandate.token_id, reason=reason or "Insufficient funds in the payer's account")
    uow.commit()
    return _back(mandate, "fail_next")
