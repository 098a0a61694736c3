"""Care pages: the household's Help tab in the customer app (`/app/help…`, with the 'I smell gas' lane)
and the care centre's queue and ticket page in the back office (`/ops/tickets…`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citygas.care import rules, service
from citygas.care.models import Ticket
from citygas.customers.models import Customer
from citygas.identity.principal import Principal
from citygas.identity.rules import Permission
from citygas.platform.errors import DomainError, ValidationFailed
from citygas.platform.tenancy import Tenant
from citygas.platform.time import utcnow
from citygas.platform.uow import UnitOfWork
from citygas.web.deps import DbDep, MaybePrincipal, current_principal, uow_with, verify_csrf
from citygas.web.render import render

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

P = Permission
HouseholdUow = Annotated[UnitOfWork, Depends(uow_with(P.CUSTOMER_SELF))]
ViewUow = Annotated[UnitOfWork, Depends(uow_with(P.TICKET_VIEW))]
ManageUow = Annotated[UnitOfWork, Depends(uow_with(P.TICKET_MANAGE))]

# What a household reads for each step of its ticket's history (English; the template translates).
HOUSEHOLD_STEPS: dict[str, str] = {
    "start": "Raised",
    "acknowledge": "Seen by our care team",
    "start_work": "Work started",
    "resolve": "Resolved",
    "close": "Closed",
    "reopen": "Reopened",
    "cancel": "Cancelled",
    "rate": "You rated the service",
}
# Steps whose note the household sees (an agent's note on acknowledging is for colleagues).
HOUSEHOLD_NOTES = frozenset({"resolve", "reopen", "cancel", "rate"})


def _principal(request: Request) -> Principal:
    principal = current_principal(request)
    assert principal is not None  # the route's permission dependency has checked it
    return principal


def _me(request: Request, uow: UnitOfWork) -> Customer:
    me = uow.session.get(Customer, _principal(request).id)
    assert me is not None  # a customer session resolves only to an existing customer
    return me


def _tenant(request: Request, uow: UnitOfWork) -> Tenant:
    tenant = uow.session.get(Tenant, _principal(request).tenant_id)
    assert tenant is not None
    return tenant


# --- the household's Help tab ------------------------------------------------------------------------


@router.get("/app/help", response_class=HTMLResponse)
def help_home(request: Request, uow: HouseholdUow) -> Response:
    me = _me(request, uow)
    tickets = service.household_tickets(uow.session, me.phone)
    return render(
        request,
        "app/help.html",
        tab="help",
        tickets=tickets,
        labels=_labels(),
        live_states=rules.LIVE_STATES,
        tenant=_tenant(request, uow),
    )


@router.get("/app/help/gas", response_class=HTMLResponse)
def gas_page(request: Request, db: DbDep, principal: MaybePrincipal) -> Response:
    """Public on purpose: someone who smells gas must see what to do without logging in (the login page
    links here). A logged-in household also gets its CGD's number and the buttons to report the leak."""
    if principal is None or principal.kind != "customer":
        return render(
            request,
            "app/help_gas.html",
            tab="help",
            connections=[],
            live={},
            emergency_number=rules.NATIONAL_EMERGENCY_NUMBER,
        )
    with db.unit_of_work(tenant=principal.tenant_id, actor=principal.actor, read_only=True) as uow:
        return _gas_page(request, uow)


def _gas_page(request: Request, uow: UnitOfWork, status_code: int = 200, **extra: Any) -> Response:
    me = _me(request, uow)
    connections = service.household_connections(uow.session, me.phone)
    live = {c.id: service.live_emergency(uow.session, c.id) for c in connections}
    return render(
        request,
        "app/help_gas.html",
        status_code=status_code,
        tab="help",
        connections=connections,
        live=live,
        emergency_number=_tenant(request, uow).emergency_number,
        **extra,
    )


@router.post("/app/help/gas/report")
def raise_emergency(
    request: Request, uow: HouseholdUow, consumer_number: Annotated[str, Form(max_length=24)] = ""
) -> Response:
    me = _me(request, uow)
    try:
        connections = service.household_connections(uow.session, me.phone)
        if not consumer_number and len(connections) == 1:
            consumer_number = connections[0].consumer_number
        customer = service.household_connection(uow.session, me.phone, consumer_number)
        outcome = service.do_raise_emergency(uow.session, customer=customer)
    except DomainError as exc:
        uow.rollback()
        return _gas_page(request, uow, status_code=exc.status, error=exc.detail)
    if not outcome.existing:
        uow.because("household reported a gas leak").commit()
    return RedirectResponse(f"/app/help/{outcome.ticket.number}", status_code=303)


@router.get("/app/help/new", response_class=HTMLResponse)
def new_ticket_form(request: Request, uow: HouseholdUow) -> Response:
    return _new_form(request, uow, consumer_number="", category="", description="")


def _new_form(request: Request, uow: UnitOfWork, status_code: int = 200, **values: Any) -> Response:
    me = _me(request, uow)
    return render(
        request,
        "app/help_new.html",
        status_code=status_code,
        tab="help",
        connections=service.household_connections(uow.session, me.phone),
        complaints=rules.customer_categories(rules.Kind.COMPLAINT),
        requests=rules.customer_categories(rules.Kind.REQUEST),
        description_min=rules.DESCRIPTION_MIN,
        description_max=rules.DESCRIPTION_MAX,
        **values,
    )


@router.post("/app/help/new")
def raise_ticket(
    request: Request,
    uow: HouseholdUow,
    consumer_number: Annotated[str, Form(max_length=24)] = "",
    category: Annotated[str, Form(max_length=32)] = "",
    description: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    me = _me(request, uow)
    try:
        connections = service.household_connections(uow.session, me.phone)
        if not consumer_number and len(connections) == 1:
            consumer_number = connections[0].consumer_number
        customer = service.household_connection(uow.session, me.phone, consumer_number)
        if category == rules.GAS_LEAK.code:
            outcome = service.do_raise_emergency(uow.session, customer=customer, description=description)
            ticket = outcome.ticket
        else:
            ticket = service.do_raise_ticket(
                uow.session, customer=customer, category_code=category, description=description
            )
    except DomainError as exc:
        uow.rollback()
        return _new_form(
            request,
            uow,
            status_code=exc.status,
            error=exc.detail,
            consumer_number=consumer_number,
            category=category,
            description=description,
        )
    uow.because("household raised a ticket").commit()
    return RedirectResponse(f"/app/help/{ticket.number}", status_code=303)


@dataclass(frozen=True)
class Step:
    at: datetime
    kind: str  # step | reply
    text: str  # English label of the step, or the reply itself
    note: str
    by_you: bool


def _household_timeline(uow: UnitOfWork, ticket: Ticket) -> list[Step]:
    steps: list[Step] = []
    for row in service.ticket_history(uow.session, ticket):
        action = "start_work" if row.action == "start" and row.from_state is not None else row.action
        if action not in HOUSEHOLD_STEPS:
            continue  # assignment and the like are the care centre's business
        note = (row.reason or "") if row.action in HOUSEHOLD_NOTES else ""
        steps.append(Step(row.at, "step", HOUSEHOLD_STEPS[action], note, row.actor_kind == "customer"))
    for message in service.ticket_messages(uow.session, ticket, include_internal=False):
        steps.append(Step(message.created_at, "reply", message.body, "", False))
    return sorted(steps, key=lambda s: s.at)


def _household_ticket_page(
    request: Request, uow: UnitOfWork, ticket_number: str, status_code: int = 200, **extra: Any
) -> Response:
    me = _me(request, uow)
    ticket = service.get_household_ticket(uow.session, ticket_number, me.phone)
    item = service.work_item_of(uow.session, ticket)
    now = utcnow()
    return render(
        request,
        "app/help_ticket.html",
        status_code=status_code,
        tab="help",
        ticket=ticket,
        timeline=_household_timeline(uow, ticket),
        due_at=item.due_at,
        labels=_labels(),
        live=ticket.state in rules.LIVE_STATES,
        may_cancel=ticket.state == rules.State.OPEN and ticket.kind != rules.Kind.EMERGENCY,
        may_reopen=ticket.state == rules.State.RESOLVED and rules.may_reopen(ticket.resolved_at, now),
        may_rate=ticket.state in (rules.State.RESOLVED, rules.State.CLOSED) and ticket.rating is None,
        tenant=_tenant(request, uow),
        **extra,
    )


@router.get("/app/help/{ticket_number}", response_class=HTMLResponse)
def household_ticket(request: Request, ticket_number: str, uow: HouseholdUow) -> Response:
    return _household_ticket_page(request, uow, ticket_number)


def _household_act(
    request: Request, uow: UnitOfWork, ticket_number: str, action: str, reason: str, why: str
) -> Response:
    me = _me(request, uow)
    ticket = service.get_household_ticket(uow.session, ticket_number, me.phone, lock=True)
    try:
        service.do_ticket_action(
            uow.session, ticket, action, permissions=_principal(request).permissions, reason=reason
        )
    except DomainError as exc:
        uow.rollback()
        return _household_ticket_page(request, uow, ticket_number, status_code=exc.status, error=exc.detail)
    uow.because(why).commit()
    return RedirectResponse(f"/app/help/{ticket_number}", status_code=303)


@router.post("/app/help/{ticket_number}/cancel")
def household_cancel(
    request: Request,
    ticket_number: str,
    uow: HouseholdUow,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    return _household_act(
        request, uow, ticket_number, "cancel", reason or "Cancelled by the customer", "household cancelled"
    )


@router.post("/app/help/{ticket_number}/reopen")
def household_reopen(
    request: Request,
    ticket_number: str,
    uow: HouseholdUow,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    return _household_act(request, uow, ticket_number, "reopen", reason, "household reopened")


@router.post("/app/help/{ticket_number}/rate")
def household_rate(
    request: Request,
    ticket_number: str,
    uow: HouseholdUow,
    rating: Annotated[str, Form(max_length=2)] = "",
    comment: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    me = _me(request, uow)
    ticket = service.get_household_ticket(uow.session, ticket_number, me.phone, lock=True)
    try:
        service.do_rate(uow.session, ticket, stars=rating, comment=comment)
    except DomainError as exc:
        uow.rollback()
        return _household_ticket_page(request, uow, ticket_number, status_code=exc.status, error=exc.detail)
    uow.because("household rated the service").commit()
    return RedirectResponse(f"/app/help/{ticket_number}", status_code=303)


def _labels() -> dict[str, dict[str, str]]:
    return {
        "category": {c.code: c.label for c in rules.CATEGORIES},
        "state": dict(rules.STATE_LABELS),
        "priority": dict(rules.PRIORITY_LABELS),
    }


# --- the care centre ----------------------------------------------------------------------------------


@router.get("/ops/tickets", response_class=HTMLResponse)
def ticket_queue(
    request: Request,
    uow: ViewUow,
    status: str = "live",
    category: str = "",
    mine: int = 0,
) -> Response:
    principal = _principal(request)
    error = None
    try:
        rows = service.care_queue(
            uow.session,
            status=status,
            category=category,
            assignee_id=principal.id if mine and principal.kind == "staff" else None,
        )
    except DomainError as exc:
        rows, error = [], exc.detail
    return render(
        request,
        "care/queue.html",
        status_code=422 if error else 200,
        error=error,
        rows=rows,
        status=status,
        category=category,
        mine=bool(mine),
        labels=_labels(),
        categories=rules.CATEGORIES,
        states=rules.STATE_LABELS,
        emergency_count=sum(
            1
            for r in rows
            if r.ticket.priority == rules.Priority.EMERGENCY and r.ticket.state in rules.LIVE_STATES
        ),
        overdue_count=sum(1 for r in rows if r.overdue),
    )


def _staff_ticket_page(
    request: Request, uow: UnitOfWork, ticket_number: str, status_code: int = 200, **extra: Any
) -> Response:
    principal = _principal(request)
    ticket = service.get_ticket(uow.session, ticket_number)
    customer = uow.session.get(Customer, ticket.customer_id)
    item = service.work_item_of(uow.session, ticket)
    actions = [t.name for t in rules.TICKET.available(ticket.state) if t.permission == rules.TICKET_MANAGE]
    if ticket.state == rules.State.RESOLVED and rules.may_reopen(ticket.resolved_at, utcnow()):
        actions.append("reopen")
    return render(
        request,
        "care/ticket.html",
        status_code=status_code,
        ticket=ticket,
        customer=customer,
        due_at=item.due_at,
        overdue=item.due_at is not None
        and item.due_at < utcnow()
        and not item.closed
        and ticket.state in rules.LIVE_STATES,
        history=service.ticket_history(uow.session, ticket),
        messages=service.ticket_messages(uow.session, ticket, include_internal=True),
        labels=_labels(),
        can_manage=principal.can(P.TICKET_MANAGE),
        actions=actions,
        assigned_to_me=ticket.assignee_id == principal.id,
        live=ticket.state in rules.LIVE_STATES,
        **extra,
    )


@router.get("/ops/tickets/new", response_class=HTMLResponse)
def caller_ticket_form(
    request: Request,
    uow: ManageUow,  # noqa: ARG001 - its dependency checks that the agent may raise tickets
    caller: str = "",
) -> Response:
    return _caller_form(request, caller=caller, category="", description="")


def _caller_form(request: Request, status_code: int = 200, **values: Any) -> Response:
    return render(request, "care/new.html", status_code=status_code, categories=rules.CATEGORIES, **values)


@router.post("/ops/tickets/new")
def raise_for_caller(
    request: Request,
    uow: ManageUow,
    caller: Annotated[str, Form(max_length=40)] = "",
    category: Annotated[str, Form(max_length=32)] = "",
    description: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A care agent raises a ticket for the household on the phone, found by consumer or phone number."""
    try:
        customer = service.find_caller(uow.session, caller)
        ticket, existing = service.do_raise_for_caller(
            uow.session, customer=customer, category_code=category, description=description
        )
    except DomainError as exc:
        uow.rollback()
        values = {"caller": caller, "category": category, "description": description}
        return _caller_form(request, status_code=exc.status, error=exc.detail, **values)
    if existing:  # the leak is already being handled: show it, change nothing
        return RedirectResponse(f"/ops/tickets/{ticket.number}", status_code=303)
    uow.because(f"raised for the caller by {_principal(request).label}").commit()
    return RedirectResponse(f"/ops/tickets/{ticket.number}", status_code=303)


@router.get("/ops/tickets/{ticket_number}", response_class=HTMLResponse)
def staff_ticket(request: Request, ticket_number: str, uow: ViewUow) -> Response:
    return _staff_ticket_page(request, uow, ticket_number)


@router.post("/ops/tickets/{ticket_number}/transition")
def staff_transition(
    request: Request,
    ticket_number: str,
    uow: ManageUow,
    action: Annotated[str, Form(max_length=32)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    ticket = service.get_ticket(uow.session, ticket_number, lock=True)
    try:
        if action not in service.STAFF_ACTIONS:
            raise ValidationFailed(f"'{action}' is not something care can do to a ticket")
        service.do_ticket_action(
            uow.session, ticket, action, permissions=_principal(request).permissions, reason=reason
        )
    except DomainError as exc:
        uow.rollback()
        return _staff_ticket_page(request, uow, ticket_number, status_code=exc.status, error=exc.detail)
    uow.because(reason or f"care: {action}").commit()
    return RedirectResponse(f"/ops/tickets/{ticket_number}", status_code=303)


@router.post("/ops/tickets/{ticket_number}/assign")
def staff_assign(request: Request, ticket_number: str, uow: ManageUow) -> Response:
    principal = _principal(request)
    ticket = service.get_ticket(uow.session, ticket_number, lock=True)
    try:
        service.do_assign_to_me(uow.session, ticket, staff_id=principal.id, permissions=principal.permissions)
    except DomainError as exc:
        uow.rollback()
        return _staff_ticket_page(request, uow, ticket_number, status_code=exc.status, error=exc.detail)
    uow.because("care agent took the ticket").commit()
    return RedirectResponse(f"/ops/tickets/{ticket_number}", status_code=303)


@router.post("/ops/tickets/{ticket_number}/messages")
def staff_message(
    request: Request,
    ticket_number: str,
    uow: ManageUow,
    visibility: Annotated[str, Form(max_length=16)] = "",
    body: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    ticket = service.get_ticket(uow.session, ticket_number, lock=True)
    try:
        if visibility not in ("public", "internal"):
            raise ValidationFailed("Choose a reply to the customer or an internal note")
        service.do_add_message(
            uow.session,
            ticket,
            public=visibility == "public",
            body=body,
            permissions=_principal(request).permissions,
        )
    except DomainError as exc:
        uow.rollback()
        return _staff_ticket_page(
            request, uow, ticket_number, status_code=exc.status, error=exc.detail, draft=body
        )
    uow.because("reply to customer" if visibility == "public" else "internal note").commit()
    return RedirectResponse(f"/ops/tickets/{ticket_number}", status_code=303)
