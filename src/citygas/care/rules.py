"""Pure rules of care: ticket categories and priorities, the ticket process, SLA due times, reopening and
rating. No database, no web.

SLA norms. PNGRB's Code of Practice for Quality of Service for City or Local Natural Gas Distribution
Networks Regulations, 2010, regulation 10(1)(e)(ii), makes every CGD *set* an emergency response time
"as a first response to make the system safe"; it does not fix the number. citygas defaults to
30 minutes for a reported leak, the first-response target Indian CGDs commonly publish for their
emergency number (1906) and the one this table is reviewed against. Requests have timelines in the same
regulations: regulation 4(2)(a) gives 15 days to examine an alteration (a meter shift) and 4(2)(d) 30
days to shift a connection. Everything here is a table: a CGD whose licence or contract says otherwise
changes the table (reviewed like the permission matrix), not the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from citygas.platform.workflow_rules import StateSpec, t, workflow

TICKET_MANAGE: Final = "ticket.manage"  # citygas.identity.rules.Permission.TICKET_MANAGE
CUSTOMER_SELF: Final = "customer.self"  # citygas.identity.rules.Permission.CUSTOMER_SELF
CARE_QUEUE: Final = "care_agent"
# The PNG emergency number India's CGDs share; shown to someone not logged in, whose CGD we do not know.
NATIONAL_EMERGENCY_NUMBER: Final = "1906"  # the role whose activity list shows live tickets

# A resolved ticket may be reopened for this long; after it the ticket closes by itself.
REOPEN_WINDOW: Final = timedelta(days=7)
DESCRIPTION_MIN: Final = 10
DESCRIPTION_MAX: Final = 2000
MESSAGE_MAX: Final = 2000
REASON_MAX: Final = 500
COMMENT_MAX: Final = 500


class CareRuleError(ValueError):
    """Input a person gave that care cannot accept; the message says what to do instead."""


class Kind(StrEnum):
    COMPLAINT = "complaint"
    REQUEST = "request"
    EMERGENCY = "emergency"


class Priority(StrEnum):
    EMERGENCY = "emergency"
    HIGH = "high"
    NORMAL = "normal"


PRIORITY_RANK: Final[dict[Priority, int]] = {Priority.EMERGENCY: 0, Priority.HIGH: 1, Priority.NORMAL: 2}
PRIORITY_LABELS: Final[dict[str, str]] = {
    Priority.EMERGENCY: "Emergency",
    Priority.HIGH: "High",
    Priority.NORMAL: "Normal",
}


@dataclass(frozen=True)
class Category:
    code: str
    label: str  # English; the app translates it
    kind: Kind
    priority: Priority
    resolve_within: timedelta | None = None  # overrides the priority's resolution time


# Priority follows the category, never the customer's choice: a household without gas or with money
# taken and no token cannot cook, so those come before a billing question; a leak is always first.
CATEGORIES: Final[tuple[Category, ...]] = (
    Category("gas_leak", "Gas leak", Kind.EMERGENCY, Priority.EMERGENCY),
    Category("no_gas", "No gas or low pressure", Kind.COMPLAINT, Priority.HIGH),
    Category("meter_problem", "Meter problem", Kind.COMPLAINT, Priority.NORMAL),
    Category("token_not_accepted", "Token not accepted by the meter", Kind.COMPLAINT, Priority.HIGH),
    Category("payment_no_token", "Payment debited but no token", Kind.COMPLAINT, Priority.HIGH),
    Category("billing", "Billing or charges", Kind.COMPLAINT, Priority.NORMAL),
    Category("app_problem", "Problem with the app", Kind.COMPLAINT, Priority.NORMAL),
    Category("complaint_other", "Other complaint", Kind.COMPLAINT, Priority.NORMAL),
    Category(
        "new_connection", "Question about a new connection", Kind.REQUEST, Priority.NORMAL, timedelta(days=7)
    ),
    # QoS regulations 4(2)(a)(i): the feasibility and cost of an alteration within 15 days.
    Category("meter_shift", "Shift the meter", Kind.REQUEST, Priority.NORMAL, timedelta(days=15)),
    Category(
        "temporary_disconnection", "Temporary disconnection", Kind.REQUEST, Priority.NORMAL, timedelta(days=7)
    ),
    Category(
        "name_phone_change",
        "Change of name or phone number",
        Kind.REQUEST,
        Priority.NORMAL,
        timedelta(days=15),
    ),
    Category("request_other", "Other request", Kind.REQUEST, Priority.NORMAL, timedelta(days=7)),
)
_BY_CODE: Final[dict[str, Category]] = {c.code: c for c in CATEGORIES}
GAS_LEAK: Final = _BY_CODE["gas_leak"]


def category(code: str) -> Category:
    try:
        return _BY_CODE[code]
    except KeyError:
        raise CareRuleError("Choose what your complaint or request is about") from None


def customer_categories(kind: Kind) -> list[Category]:
    """What the 'raise a complaint or request' form offers (a leak has its own red button)."""
    return [c for c in CATEGORIES if c.kind is kind]


@dataclass(frozen=True)
class Sla:
    respond: timedelta  # open → acknowledged (or started)
    resolve: timedelta  # raised (or reopened) → resolved


SLA_BY_PRIORITY: Final[dict[Priority, Sla]] = {
    Priority.EMERGENCY: Sla(respond=timedelta(minutes=30), resolve=timedelta(hours=4)),
    Priority.HIGH: Sla(respond=timedelta(hours=4), resolve=timedelta(hours=24)),
    Priority.NORMAL: Sla(respond=timedelta(hours=24), resolve=timedelta(hours=72)),
}


def sla_for(cat: Category) -> Sla:
    base = SLA_BY_PRIORITY[cat.priority]
    return Sla(respond=base.respond, resolve=cat.resolve_within or base.resolve)


class State(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


LIVE_STATES: Final = frozenset({State.OPEN, State.ACKNOWLEDGED, State.IN_PROGRESS})
# Short texts a household reads about its ticket (English; the app translates them).
STATE_LABELS: Final[dict[str, str]] = {
    State.OPEN: "Open",
    State.ACKNOWLEDGED: "Acknowledged",
    State.IN_PROGRESS: "In progress",
    State.RESOLVED: "Resolved",
    State.CLOSED: "Closed",
    State.CANCELLED: "Cancelled",
}

# open → acknowledged → in_progress → resolved → closed; reopen from resolved (within REOPEN_WINDOW, checked
# by the service with the clock); the household may cancel while nobody has picked the ticket up yet.
# Resolved is not final, so the work item stays; it has no queue and no clock (nothing is due from care).
TICKET = workflow(
    "care_ticket",
    initial=State.OPEN,
    states=[
        StateSpec(State.OPEN, "Open, to acknowledge", queue_role=CARE_QUEUE),
        StateSpec(State.ACKNOWLEDGED, "Acknowledged, to resolve", queue_role=CARE_QUEUE),
        StateSpec(State.IN_PROGRESS, "In progress, to resolve", queue_role=CARE_QUEUE),
        StateSpec(State.RESOLVED, "Resolved"),
        StateSpec(State.CLOSED, "Closed", final=True),
        StateSpec(State.CANCELLED, "Cancelled", final=True),
    ],
    transitions=[
        t("acknowledge", State.OPEN, State.ACKNOWLEDGED, permission=TICKET_MANAGE, label="acknowledge"),
        t(
            "start",
            [State.OPEN, State.ACKNOWLEDGED],
            State.IN_PROGRESS,
            permission=TICKET_MANAGE,
            label="start work",
        ),
        t(
            "resolve",
            [State.OPEN, State.ACKNOWLEDGED, State.IN_PROGRESS],
            State.RESOLVED,
            permission=TICKET_MANAGE,
            requires_reason=True,
            label="resolve",
        ),
        t("close", State.RESOLVED, State.CLOSED, permission=TICKET_MANAGE, label="close"),
        # Either side may reopen: the household that is still without gas, or the agent on its call.
        t("reopen", State.RESOLVED, State.OPEN, requires_reason=True, label="reopen"),
        t("cancel", State.OPEN, State.CANCELLED, permission=CUSTOMER_SELF, label="cancel"),
    ],
)


def due_at(cat: Category, state: str, *, clock_started_at: datetime) -> datetime | None:
    """When the ticket's current step is due. Response is measured from raising (or reopening); so is
    resolution, so a slow acknowledgement does not buy the agent more time to resolve."""
    sla = sla_for(cat)
    if state == State.OPEN:
        return clock_started_at + sla.respond
    if state in (State.ACKNOWLEDGED, State.IN_PROGRESS):
        return clock_started_at + sla.resolve
    return None


def may_reopen(resolved_at: datetime | None, now: datetime) -> bool:
    return resolved_at is not None and now - resolved_at <= REOPEN_WINDOW


def check_description(text: str) -> str:
    cleaned = text.strip()
    if len(cleaned) < DESCRIPTION_MIN:
        raise CareRuleError(f"Tell us a little more: at least {DESCRIPTION_MIN} characters")
    if len(cleaned) > DESCRIPTION_MAX:
        raise CareRuleError(f"Please keep it under {DESCRIPTION_MAX} characters")
    return cleaned


def check_message(text: str, *, what: str = "The message") -> str:
    cleaned = text.strip()
    if not cleaned:
        raise CareRuleError(f"{what} is empty")
    if len(cleaned) > MESSAGE_MAX:
        raise CareRuleError(f"{what} is longer than {MESSAGE_MAX} characters")
    return cleaned


def check_reason(text: str | None, *, what: str = "The reason") -> str | None:
    cleaned = (text or "").strip()
    if len(cleaned) > REASON_MAX:
        raise CareRuleError(f"{what} is longer than {REASON_MAX} characters")
    return cleaned or None


def check_rating(stars: str, comment: str) -> tuple[int, str]:
    """1–5 stars as typed or chosen in the form, and an optional comment."""
    text = stars.strip()
    if text not in ("1", "2", "3", "4", "5"):  # not isdigit(): that admits other scripts' digits
        raise CareRuleError("Choose from 1 to 5 stars")
    cleaned = comment.strip()
    if len(cleaned) > COMMENT_MAX:
        raise CareRuleError(f"Please keep the comment under {COMMENT_MAX} characters")
    return int(text), cleaned


def queue_order(priority: str, due: datetime | None, raised_at: datetime, now: datetime) -> tuple[int, ...]:
    """How the care queue sorts: the emergency lane first, then overdue work, then the earliest due."""
    emergency = 0 if priority == Priority.EMERGENCY else 1
    overdue = 0 if due is not None and due < now else 1
    due_key = int(due.timestamp()) if due is not None else 2**62
    return (emergency, overdue, due_key, int(raised_at.timestamp()))
