"""Care use cases: raise a ticket (and the one-press gas-leak emergency), work it through its process,
talk to the household, rate, and the care queue. Use cases take a `Session` and never commit.

Every state change goes through the platform's workflow (`citygas.platform.workflow`), which writes the
history row (actor, from, to, reason, time) and moves the ticket's work item; this module then sets the
work item's due time from the ticket's priority, since SLAs here depend on the ticket, not only on its
state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, select
from sqlalchemy.orm import Session

from citygas.care import rules
from citygas.care.models import Ticket, TicketMessage
from citygas.care.rules import TICKET, CareRuleError, Kind, Priority, State
from citygas.customers.households import connections_of_phone
from citygas.customers.models import Customer
from citygas.identity.models import StaffUser
from citygas.identity.rules import normalise_phone
from citygas.notifications import ports as notifications
from citygas.platform.context import actor_of
from citygas.platform.db import flush_unique
from citygas.platform.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from citygas.platform.ids import uuid7
from citygas.platform.numbers import NumberKind, next_number
from citygas.platform.outbox import emit
from citygas.platform.tenancy import Tenant, current_tenant
from citygas.platform.time import utcnow
from citygas.platform.workflow import WorkflowTransition, WorkItem, do_transition, history, start
from citygas.web.i18n import format_moment, translate

EMERGENCY_TOPIC = "care.emergency.raised"  # the care centre's pager listens to this
RAISED_TOPIC = "care.ticket.raised"
DEFAULT_LEAK_TEXT = "Smell of gas reported from the customer app"


def _invalid(exc: CareRuleError) -> ValidationFailed:
    return ValidationFailed(str(exc))


# --- households ------------------------------------------------------------------------------------


household_connections = connections_of_phone


def household_connection(session: Session, phone: str, consumer_number: str) -> Customer:
    customer = session.execute(
        select(Customer).where(Customer.consumer_number == consumer_number.strip(), Customer.phone == phone)
    ).scalar_one_or_none()
    if customer is None:  # another household's connection looks exactly like no connection
        raise ValidationFailed("Choose one of your connections")
    return customer


def household_tickets(session: Session, phone: str, *, limit: int = 100) -> list[Ticket]:
    """The household's tickets, live ones first (emergencies on top), then the most recent."""
    live = case((Ticket.state.in_(sorted(rules.LIVE_STATES)), 0), else_=1)
    emergency = case((Ticket.priority == Priority.EMERGENCY, 0), else_=1)
    query = (
        select(Ticket)
        .join(Customer, Customer.id == Ticket.customer_id)
        .where(Customer.phone == phone)
        .order_by(live, emergency, Ticket.raised_at.desc())
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def get_ticket(session: Session, number: str, *, lock: bool = False) -> Ticket:
    ticket = session.execute(select(Ticket).where(Ticket.number == number)).scalar_one_or_none()
    if ticket is None:
        raise NotFound(f"no ticket {number}")
    if lock:
        # Two people acting on one ticket at once: the second waits here and then sees the first's result.
        session.refresh(ticket, with_for_update=True)
    return ticket


def get_household_ticket(session: Session, number: str, phone: str, *, lock: bool = False) -> Ticket:
    ticket = get_ticket(session, number, lock=lock)
    owner = session.get(Customer, ticket.customer_id)
    if owner is None or owner.phone != phone:
        raise NotFound(f"no ticket {number}")  # another household's ticket looks unknown
    return ticket


# --- raising ---------------------------------------------------------------------------------------


def do_raise_ticket(
    session: Session, *, customer: Customer, category_code: str, description: str, channel: str = "app"
) -> Ticket:
    """A complaint or service request. (A leak goes through `do_raise_emergency`, whatever the form says.)"""
    try:
        cat = rules.category(category_code)
        if cat.kind is Kind.EMERGENCY:
            raise CareRuleError("For a gas leak, use the red 'I smell gas' button")
        text = rules.check_description(description)
    except CareRuleError as exc:
        raise _invalid(exc) from exc
    ticket = _new_ticket(session, customer, cat, text, channel)
    _notify_household(
        session,
        customer,
        "Your %(what)s %(number)s (%(category)s) is registered. We will reply by %(due)s. Track it in the "
        "citygas app under Help.",
        what="request" if cat.kind is Kind.REQUEST else "complaint",
        number=ticket.number,
        category=cat.label,
        due=_due_of(session, ticket),
    )
    return ticket


def find_caller(session: Session, said: str) -> Customer:
    """The connection a caller means, from what they say: a consumer number, or the phone number the
    connection is registered with (when that phone has one connection of this CGD). Refusals say what
    to ask the caller next."""
    text = said.strip()
    if not text:
        raise ValidationFailed("Ask the caller for their consumer number or registered mobile number")
    by_number = session.execute(
        select(Customer).where(Customer.consumer_number == text.upper())
    ).scalar_one_or_none()
    if by_number is not None:
        return by_number
    try:
        phone = normalise_phone(text)
    except ValueError:
        raise NotFound(f"No connection {text}: check the consumer number with the caller") from None
    found = list(
        session.execute(select(Customer).where(Customer.phone == phone).order_by(Customer.consumer_number))
        .scalars()
        .all()
    )
    if not found:
        raise NotFound(f"No connection is registered with {phone}: ask for the consumer number")
    if len(found) > 1:
        numbers = ", ".join(c.consumer_number for c in found)
        raise ValidationFailed(f"{phone} has {len(found)} connections ({numbers}): ask which one")
    return found[0]


def do_raise_for_caller(
    session: Session, *, customer: Customer, category_code: str, description: str
) -> tuple[Ticket, bool]:
    """A ticket a care agent raises while the household is on the phone (channel `care`): a leak goes the
    emergency way (one live leak ticket per connection). The ticket, and True if it existed already."""
    try:
        cat = rules.category(category_code)
    except CareRuleError as exc:
        raise _invalid(exc) from exc
    if cat.kind is Kind.EMERGENCY:
        outcome = do_raise_emergency(session, customer=customer, description=description, channel="care")
        return outcome.ticket, outcome.existing
    return do_raise_ticket(
        session, customer=customer, category_code=cat.code, description=description, channel="care"
    ), False


@dataclass(frozen=True)
class EmergencyOutcome:
    ticket: Ticket
    existing: bool  # True: the connection already had a live leak ticket; no new one was made


def do_raise_emergency(
    session: Session, *, customer: Customer, description: str = "", channel: str = "app"
) -> EmergencyOutcome:
    """The 'I smell gas' button: one live emergency ticket per connection, however often it is pressed.

    The connection's row is locked first (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises
    writers), so a double click waits for the first press to commit and then finds its ticket. The unique
    `live_emergency_key` backs this up at the database. The ticket number is taken only once we know a
    ticket will be made, so a second press leaves no gap in the numbers."""
    customer = session.execute(
        select(Customer).where(Customer.id == customer.id).with_for_update()
    ).scalar_one()
    existing = live_emergency(session, customer.id)
    if existing is not None:
        return EmergencyOutcome(existing, existing=True)
    try:
        text = rules.check_reason(description, what="The description") or DEFAULT_LEAK_TEXT
    except CareRuleError as exc:
        raise _invalid(exc) from exc
    ticket = _new_ticket(session, customer, rules.GAS_LEAK, text, channel)
    tenant = session.get(Tenant, current_tenant(session))
    emergency_number = tenant.emergency_number if tenant is not None else "1906"
    item = _work_item(session, ticket)
    emit(
        session,
        EMERGENCY_TOPIC,
        {
            "ticket_id": str(ticket.id),
            "number": ticket.number,
            "consumer_number": customer.consumer_number,
            "name": customer.name,
            "phone": customer.phone,
            "address": customer.address,
            "raised_at": ticket.raised_at.isoformat(),
            "respond_by": item.due_at.isoformat() if item.due_at else None,
        },
    )
    _notify_household(
        session,
        customer,
        "Gas leak reported: %(number)s. Our emergency team is on its way. Do not use switches or flames, "
        "open doors and windows, close the meter valve, go outside and call %(phone)s.",
        number=ticket.number,
        phone=emergency_number,
    )
    return EmergencyOutcome(ticket, existing=False)


def live_emergency(session: Session, customer_id: uuid.UUID) -> Ticket | None:
    return session.execute(
        select(Ticket).where(Ticket.live_emergency_key == str(customer_id))
    ).scalar_one_or_none()


def _new_ticket(
    session: Session, customer: Customer, cat: rules.Category, description: str, channel: str
) -> Ticket:
    now = utcnow()
    actor = actor_of(session)
    ticket = Ticket(
        id=uuid7(),
        number=next_number(session, NumberKind.TICKET),
        customer_id=customer.id,
        consumer_number=customer.consumer_number,
        category=cat.code,
        kind=cat.kind.value,
        priority=cat.priority.value,
        description=description,
        state=TICKET.initial,
        channel=channel,
        raised_by=actor.label[:200],
        raised_at=now,
        clock_started_at=now,
        acknowledged_at=None,
        resolved_at=None,
        closed_at=None,
        resolution_note="",
        assignee_id=None,
        assignee_label="",
        rating=None,
        rating_comment="",
        rated_at=None,
        live_emergency_key=str(customer.id) if cat.kind is Kind.EMERGENCY else None,
    )
    session.add(ticket)
    flush_unique(session, Conflict("this connection already has a gas leak ticket open"))
    start(
        session,
        TICKET,
        ticket,
        title=f"{'EMERGENCY ' if cat.kind is Kind.EMERGENCY else ''}{ticket.number}: {cat.label} "
        f"({customer.consumer_number})",
        link=f"/ops/tickets/{ticket.number}",
    )
    session.flush()
    _set_clock(session, ticket, history(session, TICKET.name, ticket.id)[-1])
    emit(
        session,
        RAISED_TOPIC,
        {
            "ticket_id": str(ticket.id),
            "number": ticket.number,
            "consumer_number": customer.consumer_number,
            "category": cat.code,
            "priority": cat.priority.value,
        },
    )
    return ticket


# --- working a ticket ------------------------------------------------------------------------------

STAFF_ACTIONS = ("acknowledge", "start", "resolve", "close", "reopen")
HOUSEHOLD_ACTIONS = ("reopen", "cancel")


def do_ticket_action(
    session: Session,
    ticket: Ticket,
    action: str,
    *,
    permissions: frozenset[str],
    reason: str | None = None,
) -> WorkflowTransition:
    """Fire one of the ticket's transitions. A refused one raises and changes nothing."""
    try:
        cleaned = rules.check_reason(reason, what="The note")
    except CareRuleError as exc:
        raise _invalid(exc) from exc
    now = utcnow()
    if (
        action == "reopen"
        and ticket.state == State.RESOLVED
        and not rules.may_reopen(ticket.resolved_at, now)
    ):
        raise ValidationFailed(
            "A ticket can be reopened only within 7 days of being resolved; raise a new one"
        )
    if action == "cancel" and ticket.kind == Kind.EMERGENCY:
        # A leak report is closed by the emergency team that made the place safe, never by a button.
        raise ValidationFailed(
            "A gas leak report cannot be cancelled here. If it was a false alarm, call the emergency number"
        )
    if action == "reopen" and ticket.kind == Kind.EMERGENCY and ticket.state == State.RESOLVED:
        other = live_emergency(session, ticket.customer_id)
        if other is not None:
            raise Conflict(f"this connection already has a live gas leak ticket, {other.number}")
    row = do_transition(session, TICKET, ticket, action, permissions=permissions, reason=cleaned)
    customer = session.get(Customer, ticket.customer_id)
    assert customer is not None  # a ticket's connection is never deleted
    if action in ("acknowledge", "start") and ticket.acknowledged_at is None:
        ticket.acknowledged_at = now  # starting work straight away answers the ticket too
    elif action == "resolve":
        ticket.resolved_at = now
        ticket.resolution_note = cleaned or ""
        ticket.live_emergency_key = None
        _notify_household(
            session,
            customer,
            "Your ticket %(number)s is resolved: %(note)s. Not fixed? Reopen it in the app within 7 days.",
            number=ticket.number,
            note=ticket.resolution_note,
        )
    elif action == "close":
        ticket.closed_at = now
    elif action == "cancel":
        ticket.closed_at = now
        ticket.live_emergency_key = None
    elif action == "reopen":
        ticket.clock_started_at = now  # a fresh response clock: the household is still waiting
        ticket.resolved_at = None
        ticket.acknowledged_at = None
        ticket.rating, ticket.rating_comment, ticket.rated_at = None, "", None
        if ticket.kind == Kind.EMERGENCY:
            ticket.live_emergency_key = str(ticket.customer_id)
    flush_unique(session, Conflict("this connection already has a live gas leak ticket"))
    _set_clock(session, ticket, row)
    return row


def do_assign_to_me(
    session: Session, ticket: Ticket, *, staff_id: uuid.UUID, permissions: frozenset[str]
) -> None:
    """Take a live ticket: it shows in this person's activity list, and the queue's 'my tickets'."""
    if rules.TICKET_MANAGE not in permissions:
        raise PermissionDenied("you may not take tickets")
    if ticket.state not in rules.LIVE_STATES:
        raise ValidationFailed(f"ticket {ticket.number} is {rules.STATE_LABELS[ticket.state].lower()}")
    user = session.get(StaffUser, staff_id)
    if user is None:
        raise NotFound("no such staff member")
    if ticket.assignee_id == user.id:
        return
    ticket.assignee_id = user.id
    ticket.assignee_label = user.full_name
    item = _work_item(session, ticket)
    item.assignee_id = user.id
    _remark(session, ticket, "assign", f"assigned to {user.full_name}")
    session.flush()


def do_add_message(
    session: Session, ticket: Ticket, *, public: bool, body: str, permissions: frozenset[str]
) -> TicketMessage:
    """A reply the household sees (and is told of by SMS), or an internal note only staff see."""
    if rules.TICKET_MANAGE not in permissions:
        raise PermissionDenied("you may not write on tickets")
    try:
        text = rules.check_message(body, what="The reply" if public else "The note")
    except CareRuleError as exc:
        raise _invalid(exc) from exc
    if ticket.state in (State.CLOSED, State.CANCELLED) and public:
        raise ValidationFailed(
            f"ticket {ticket.number} is {ticket.state}; raise a new one to write to the customer"
        )
    actor = actor_of(session)
    message = TicketMessage(
        id=uuid7(),
        ticket_id=ticket.id,
        visibility="public" if public else "internal",
        body=text,
        author_kind=actor.kind,
        author_id=actor.id,
        author_label=actor.label[:200],
        created_at=utcnow(),
    )
    session.add(message)
    if public:
        customer = session.get(Customer, ticket.customer_id)
        assert customer is not None
        _notify_household(
            session,
            customer,
            "New reply on your ticket %(number)s. Open the citygas app, Help, to read it.",
            number=ticket.number,
        )
    session.flush()
    return message


def do_rate(session: Session, ticket: Ticket, *, stars: str, comment: str) -> Ticket:
    """The household rates how its ticket was handled: once, after it is resolved."""
    if ticket.state not in (State.RESOLVED, State.CLOSED):
        raise ValidationFailed("You can rate a ticket once it is resolved")
    if ticket.rating is not None:
        raise ValidationFailed("You have already rated this ticket. Thank you!")
    try:
        ticket.rating, ticket.rating_comment = rules.check_rating(stars, comment)
    except CareRuleError as exc:
        raise _invalid(exc) from exc
    ticket.rated_at = utcnow()
    _remark(
        session,
        ticket,
        "rate",
        f"{ticket.rating} of 5" + (f": {ticket.rating_comment}" if ticket.rating_comment else ""),
    )
    session.flush()
    return ticket


# --- reading ---------------------------------------------------------------------------------------


def ticket_history(session: Session, ticket: Ticket) -> list[WorkflowTransition]:
    return history(session, TICKET.name, ticket.id)


def ticket_messages(session: Session, ticket: Ticket, *, include_internal: bool) -> list[TicketMessage]:
    query = select(TicketMessage).where(TicketMessage.ticket_id == ticket.id)
    if not include_internal:
        query = query.where(TicketMessage.visibility == "public")
    return list(session.execute(query.order_by(TicketMessage.created_at, TicketMessage.id)).scalars())


def work_item_of(session: Session, ticket: Ticket) -> WorkItem:
    return _work_item(session, ticket)


@dataclass(frozen=True)
class QueueRow:
    ticket: Ticket
    due_at: datetime | None
    overdue: bool


def care_queue(
    session: Session,
    *,
    status: str = "",
    category: str = "",
    assignee_id: uuid.UUID | None = None,
    limit: int = 200,
) -> list[QueueRow]:
    """The care centre's queue: the emergency lane first, then overdue tickets, then by due time.
    `status` is one state, 'live' (the default: open, acknowledged, in progress) or 'all'."""
    now = utcnow()
    query = select(Ticket, WorkItem.due_at).join(
        WorkItem, and_(WorkItem.workflow == TICKET.name, WorkItem.entity_id == Ticket.id)
    )
    if status in ("", "live"):
        query = query.where(Ticket.state.in_(sorted(rules.LIVE_STATES)))
    elif status != "all":
        if status not in rules.STATE_LABELS:
            raise ValidationFailed(f"no ticket status {status!r}")
        query = query.where(Ticket.state == status)
    if category:
        rules_category = _category_or_invalid(category)
        query = query.where(Ticket.category == rules_category.code)
    if assignee_id is not None:
        query = query.where(Ticket.assignee_id == assignee_id)
    live = case((Ticket.state.in_(sorted(rules.LIVE_STATES)), 0), else_=1)
    lane = case(
        (and_(Ticket.priority == Priority.EMERGENCY, Ticket.state.in_(sorted(rules.LIVE_STATES))), 0), else_=1
    )
    overdue = case((WorkItem.due_at < now, 0), else_=1)
    query = query.order_by(
        lane, live, overdue, WorkItem.due_at.is_(None), WorkItem.due_at, Ticket.raised_at.desc()
    ).limit(limit)
    return [
        QueueRow(ticket, due, due is not None and due < now and ticket.state in rules.LIVE_STATES)
        for ticket, due in session.execute(query).all()
    ]


def _category_or_invalid(code: str) -> rules.Category:
    try:
        return rules.category(code)
    except CareRuleError as exc:
        raise _invalid(exc) from exc


# --- internals -------------------------------------------------------------------------------------


def _work_item(session: Session, ticket: Ticket) -> WorkItem:
    return session.execute(
        select(WorkItem).where(WorkItem.workflow == TICKET.name, WorkItem.entity_id == ticket.id)
    ).scalar_one()


def _set_clock(session: Session, ticket: Ticket, row: WorkflowTransition) -> None:
    """Due time of the ticket's current step, from its priority (the state specs carry no clock)."""
    due = rules.due_at(
        rules.category(ticket.category), ticket.state, clock_started_at=ticket.clock_started_at
    )
    item = _work_item(session, ticket)
    item.due_at = due
    row.due_at = due
    session.flush()


def _due_of(session: Session, ticket: Ticket) -> datetime | None:
    return _work_item(session, ticket).due_at


def _remark(session: Session, ticket: Ticket, action: str, reason: str) -> None:
    """An event on the ticket's timeline that is not a change of state (assignment, a rating): written
    to the same history as the transitions, so the activity list tells the whole story."""
    actor = actor_of(session)
    item = _work_item(session, ticket)
    session.add(
        WorkflowTransition(
            id=uuid7(),
            workflow=TICKET.name,
            entity_id=ticket.id,
            action=action,
            from_state=ticket.state,
            to_state=ticket.state,
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_label=actor.label[:200],
            reason=reason[:500],
            at=utcnow(),
            due_at=item.due_at,
        )
    )


def _notify_household(session: Session, customer: Customer, text: str, **values: object) -> None:
    """An SMS in the household's language, sent after commit through the notification outbox."""
    lang = customer.language
    filled: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, datetime):
            filled[key] = format_moment(lang, value)
        elif key in ("what", "category"):
            filled[key] = translate(lang, str(value))
        else:
            filled[key] = value
    notifications.request(session, channel="sms", to=customer.phone, text=translate(lang, text, **filled))
