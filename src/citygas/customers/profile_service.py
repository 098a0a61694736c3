"""A household's profile: notification preferences, consents under the Digital Personal Data Protection
Act 2023, and 'download my data'. Use cases take a `Session` and never commit.

Consents follow the Act's shape: each optional purpose is asked for separately against a notice
(`NOTICE_VERSION`), is off until the household gives it, and is withdrawn as easily as it was given
(section 6(4)); the given and withdrawn times are kept, and the audit log keeps every change. What is
needed to supply gas at all — the connection, meter, tokens, payments, safety and the records the law
requires — is explained on the page, not offered as a switch.

The data export (section 11, the right to access a summary of one's personal data) is built in the
background from the outbox, kept for `EXPORT_LIFETIME`, then deleted."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.care.models import Ticket, TicketMessage
from citygas.care.rules import TICKET
from citygas.customers.households import connections_of_phone
from citygas.customers.models import Customer
from citygas.customers.profile_models import Consent, DataExport, NotificationPreference
from citygas.meters.models import Meter
from citygas.notifications import ports as notifications
from citygas.payments.bbps.models import BbpsPayment
from citygas.payments.gateway.models import GatewayOrder, GatewayPayment, GatewayRefund
from citygas.platform.context import actor_of
from citygas.platform.db import flush_unique
from citygas.platform.errors import Conflict, NotFound, ValidationFailed
from citygas.platform.ids import uuid7
from citygas.platform.outbox import emit
from citygas.platform.tenancy import ChargeArea, Tenant, current_tenant
from citygas.platform.time import utcnow
from citygas.platform.workflow import WorkflowTransition
from citygas.vending.models import Vend
from citygas.web.i18n import format_day, translate

EXPORT_TOPIC: Final = "customer.data_export.requested"
EXPORT_LIFETIME: Final = timedelta(days=7)
EXPORT_FORMAT: Final = "citygas.household-data/1"
NOTICE_VERSION: Final = "2026-01"
CHANNELS: Final = ("sms", "whatsapp", "email")


@dataclass(frozen=True)
class Topic:
    code: str
    label: str
    explanation: str
    default: frozenset[str]
    always_on: bool = False  # SMS cannot be switched off for it


TOPICS: Final[tuple[Topic, ...]] = (
    Topic("low_credit", "Low credit", "When your meter's credit is running low.", frozenset({"sms"})),
    Topic(
        "tokens_payments",
        "Tokens and payments",
        "Your tokens after a top-up, receipts and failed payments.",
        frozenset({"sms"}),
    ),
    Topic(
        "service_updates",
        "Service updates",
        "Replies on your complaints and requests, and visits by our technicians.",
        frozenset({"sms"}),
    ),
    Topic(
        "outages_safety",
        "Outages and safety",
        "Always on by SMS: we must be able to warn you of supply interruptions and safety work on the gas "
        "network, as the regulator (PNGRB) requires. You may add WhatsApp or email.",
        frozenset({"sms"}),
        always_on=True,
    ),
)
_TOPICS: Final[dict[str, Topic]] = {t.code: t for t in TOPICS}


@dataclass(frozen=True)
class Purpose:
    code: str
    label: str
    explanation: str


PURPOSES: Final[tuple[Purpose, ...]] = (
    Purpose(
        "usage_insights",
        "Usage insights",
        "We study your meter readings to send you tips on saving gas and to compare your use with similar "
        "homes.",
    ),
    Purpose(
        "offers",
        "Offers from the gas company",
        "Messages about offers on appliances, services and schemes of your gas company.",
    ),
    Purpose(
        "surveys",
        "Surveys about our service",
        "Occasional short surveys by SMS or phone call about how we served you.",
    ),
)
_PURPOSES: Final[dict[str, Purpose]] = {p.code: p for p in PURPOSES}


# --- notification preferences ----------------------------------------------------------------------


@dataclass(frozen=True)
class TopicChoice:
    topic: Topic
    channels: frozenset[str]
    updated_at: datetime | None
    updated_by: str


def preferences(session: Session, phone: str) -> list[TopicChoice]:
    rows = {
        r.topic: r
        for r in session.execute(
            select(NotificationPreference).where(NotificationPreference.household_phone == phone)
        ).scalars()
    }
    choices: list[TopicChoice] = []
    for topic in TOPICS:
        row = rows.get(topic.code)
        if row is None:
            choices.append(TopicChoice(topic, topic.default, None, ""))
        else:
            chosen = {
                c for c, on in (("sms", row.sms), ("whatsapp", row.whatsapp), ("email", row.email)) if on
            }
            choices.append(TopicChoice(topic, frozenset(chosen), row.updated_at, row.updated_by))
    return choices


def wants(session: Session, phone: str, topic: str, channel: str) -> bool:
    """Whether to send a message on `topic` by `channel` to this household (for the notification senders)."""
    if topic not in _TOPICS:
        raise ValueError(f"unknown notification topic {topic!r}")
    if _TOPICS[topic].always_on and channel == "sms":
        return True
    return any(c.topic.code == topic and channel in c.channels for c in preferences(session, phone))


def do_set_preferences(session: Session, phone: str, chosen: Mapping[str, Iterable[str]]) -> list[str]:
    """Save the channels chosen per topic (a topic left out keeps its current choice). Returns the topics
    that changed. Unknown topics or channels are refused before anything is written."""
    for code, channels in chosen.items():
        if code not in _TOPICS:
            raise ValidationFailed(f"There is no notification topic {code!r}")
        unknown = set(channels) - set(CHANNELS)
        if unknown:
            raise ValidationFailed(f"Choose SMS, WhatsApp or email (not {', '.join(sorted(unknown))})")
    current = {c.topic.code: c.channels for c in preferences(session, phone)}
    actor = actor_of(session)
    now = utcnow()
    changed: list[str] = []
    for code, channels in chosen.items():
        wanted = set(channels)
        if _TOPICS[code].always_on:
            wanted.add("sms")  # the safety channel stays, whatever the form says
        if frozenset(wanted) == current[code]:
            continue
        row = session.execute(
            select(NotificationPreference).where(
                NotificationPreference.household_phone == phone, NotificationPreference.topic == code
            )
        ).scalar_one_or_none()
        if row is None:
            row = NotificationPreference(id=uuid7(), household_phone=phone, topic=code)
            session.add(row)
        row.sms, row.whatsapp, row.email = ("sms" in wanted), ("whatsapp" in wanted), ("email" in wanted)
        row.updated_at = now
        row.updated_by = actor.label[:200]
        changed.append(code)
    session.flush()
    return changed


# --- consents --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentState:
    purpose: Purpose
    given: bool
    given_at: datetime | None
    withdrawn_at: datetime | None
    updated_by: str


def consents(session: Session, phone: str) -> list[ConsentState]:
    rows = {
        r.purpose: r
        for r in session.execute(select(Consent).where(Consent.household_phone == phone)).scalars()
    }
    out: list[ConsentState] = []
    for purpose in PURPOSES:
        row = rows.get(purpose.code)
        if row is None:
            out.append(ConsentState(purpose, False, None, None, ""))
        else:
            out.append(ConsentState(purpose, row.given, row.given_at, row.withdrawn_at, row.updated_by))
    return out


def do_set_consent(session: Session, phone: str, purpose: str, decision: str) -> Consent:
    """Give or withdraw consent to one purpose. Repeating the current decision changes nothing."""
    if purpose not in _PURPOSES:
        raise ValidationFailed("There is no such purpose to consent to")
    if decision not in ("give", "withdraw"):
        raise ValidationFailed("Choose to give or to withdraw your consent")
    row = session.execute(
        select(Consent).where(Consent.household_phone == phone, Consent.purpose == purpose)
    ).scalar_one_or_none()
    give = decision == "give"
    now = utcnow()
    if row is None:
        if not give:
            raise ValidationFailed("You have not given this consent, so there is nothing to withdraw")
        row = Consent(
            id=uuid7(), household_phone=phone, purpose=purpose, given=False, given_at=None, withdrawn_at=None
        )
        session.add(row)
    if row.given == give:
        return row
    row.given = give
    row.notice_version = NOTICE_VERSION
    row.updated_by = actor_of(session).label[:200]
    if give:
        row.given_at, row.withdrawn_at = now, None
    else:
        row.withdrawn_at = now
    emit(session, "customer.consent.changed", {"purpose": purpose, "given": give, "at": now.isoformat()})
    session.flush()
    return row


def has_consent(session: Session, phone: str, purpose: str) -> bool:
    """For whoever wants to use data for an optional purpose: ask first."""
    return any(c.purpose.code == purpose and c.given for c in consents(session, phone))


# --- data export -----------------------------------------------------------------------------------


def exports(session: Session, phone: str, *, limit: int = 5) -> list[DataExport]:
    return list(
        session.execute(
            select(DataExport)
            .where(DataExport.household_phone == phone)
            .order_by(DataExport.requested_at.desc())
            .limit(limit)
        ).scalars()
    )


def do_request_export(session: Session, *, customer: Customer) -> DataExport:
    """Ask for the household's data. One at a time: asking again while one is being built returns that one."""
    phone = customer.phone
    pending = session.execute(select(DataExport).where(DataExport.pending_key == phone)).scalar_one_or_none()
    if pending is not None:
        return pending
    export = DataExport(
        id=uuid7(),
        household_phone=phone,
        requested_by_customer_id=customer.id,
        status="requested",
        requested_at=utcnow(),
        ready_at=None,
        expires_at=None,
        content=None,
        size_bytes=0,
        sha256="",
        pending_key=phone,
    )
    session.add(export)
    flush_unique(session, Conflict("Your data is already being prepared"))
    emit(session, EXPORT_TOPIC, {"export_id": str(export.id)})
    return export


def do_build_export(session: Session, export_id: uuid.UUID) -> DataExport | None:
    """The background half: build the JSON, keep it for `EXPORT_LIFETIME`, tell the household. Idempotent:
    an export already built is left alone."""
    export = session.get(DataExport, export_id)
    if export is None or export.status != "requested":
        return export
    data = household_data(session, export.household_phone)
    text = json.dumps(data, ensure_ascii=False, indent=1, default=_json_default)
    now = utcnow()
    export.content = text
    export.size_bytes = len(text.encode("utf-8"))
    export.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    export.status = "ready"
    export.ready_at = now
    export.expires_at = now + EXPORT_LIFETIME
    export.pending_key = None
    requester = session.get(Customer, export.requested_by_customer_id)
    if requester is not None:
        lang = requester.language
        notifications.request(
            session,
            channel="sms",
            to=requester.phone,
            text=translate(
                lang,
                "Your citygas data is ready. Download it from Profile in the app until %(day)s.",
                day=format_day(lang, export.expires_at),
            ),
        )
    session.flush()
    return export


def downloadable_export(session: Session, export_id: uuid.UUID, phone: str) -> DataExport:
    export = session.get(DataExport, export_id)
    if export is None or export.household_phone != phone:
        raise NotFound("no such data export")
    if (
        export.status != "ready"
        or export.content is None
        or (export.expires_at is not None and export.expires_at <= utcnow())
    ):
        raise NotFound("this download has expired or is not ready yet; ask for a new one")
    return export


def expire_exports(session: Session, *, limit: int = 500) -> int:
    """Delete the content of exports past their expiry (the request row stays, for the record)."""
    now = utcnow()
    rows = (
        session.execute(
            select(DataExport).where(DataExport.status == "ready", DataExport.expires_at <= now).limit(limit)
        )
        .scalars()
        .all()
    )
    for row in rows:
        row.status = "expired"
        row.content = None
    session.flush()
    return len(rows)


# What the export holds. A context that stores more about households adds a section here.
Section = Callable[[Session, list[Customer]], list[dict[str, Any]]]
EXTRA_SECTIONS: dict[str, Section] = {}


def household_data(session: Session, phone: str) -> dict[str, Any]:
    """Everything the platform holds about the household with this phone, in the session's tenant."""
    connections = connections_of_phone(session, phone)
    ids = [c.id for c in connections]
    tenant = session.get(Tenant, current_tenant(session))
    areas = {a.id: a.name for a in session.execute(select(ChargeArea)).scalars()}
    vends = list(
        session.execute(select(Vend).where(Vend.customer_id.in_(ids)).order_by(Vend.created_at)).scalars()
    )
    data: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "generated_at": utcnow(),
        "gas_company": tenant.name if tenant is not None else "",
        "household_phone": phone,
        "about": "Everything citygas holds about the connections registered to this phone: connections, "
        "meters, top-ups with their tokens, payments, complaints and requests with the replies you were "
        "sent, notification preferences and consents. Care staff's internal notes and system security "
        "logs are not included.",
        "connections": [
            {
                "consumer_number": c.consumer_number,
                "name": c.name,
                "phone": c.phone,
                "email": c.email,
                "address": c.address,
                "area": areas.get(c.charge_area_id, ""),
                "status": c.status,
                "language": c.language,
                "registered_at": c.created_at,
            }
            for c in connections
        ],
        "meters": _meters(session, connections),
        "top_ups": [
            {
                "receipt_number": v.receipt_number,
                "consumer_number": _consumer(connections, v.customer_id),
                "channel": v.channel,
                "amount_paise": v.amount_paise,
                "gas_credit_paise": v.gas_credit_paise,
                "gas_litres": v.gas_litres,
                "vat_paise": v.vat_paise,
                "rate_paise_per_scm": v.rate_paise_per_scm,
                "deductions": v.deductions,
                "tokens": [{"kind": t.get("kind"), "token": t.get("token")} for t in v.tokens],
                "at": v.created_at,
            }
            for v in vends
        ],
        "online_payments": _online_payments(session, ids),
        "bbps_payments": [
            {
                "bbps_txn_ref": p.bbps_txn_ref,
                "consumer_number": p.consumer_number,
                "amount_paise": p.amount_paise,
                "payment_mode": p.payment_mode,
                "payment_channel": p.payment_channel,
                "paid_at": p.paid_at,
            }
            for p in session.execute(
                select(BbpsPayment).where(BbpsPayment.vend_id.in_([v.id for v in vends]))
            ).scalars()
        ],
        "tickets": _tickets(session, connections),
        "notification_preferences": [
            {"topic": c.topic.code, "channels": sorted(c.channels), "changed_at": c.updated_at}
            for c in preferences(session, phone)
        ],
        "consents": [
            {
                "purpose": c.purpose.code,
                "given": c.given,
                "given_at": c.given_at,
                "withdrawn_at": c.withdrawn_at,
            }
            for c in consents(session, phone)
        ],
        "data_export_requests": [
            {"requested_at": e.requested_at, "status": e.status, "ready_at": e.ready_at}
            for e in exports(session, phone, limit=50)
        ],
    }
    for name, section in EXTRA_SECTIONS.items():
        data[name] = section(session, connections)
    return data


def _consumer(connections: list[Customer], customer_id: uuid.UUID | None) -> str:
    return next((c.consumer_number for c in connections if c.id == customer_id), "")


def _meters(session: Session, connections: list[Customer]) -> list[dict[str, Any]]:
    meters = session.execute(
        select(Meter).where(Meter.customer_id.in_([c.id for c in connections])).order_by(Meter.created_at)
    ).scalars()
    return [
        {
            "serial": m.serial,
            "sts_meter_number": m.sts_meter_number,
            "consumer_number": _consumer(connections, m.customer_id),
            "state": m.state,
            "since": m.created_at,
        }
        for m in meters
    ]


def _online_payments(session: Session, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    orders = list(
        session.execute(
            select(GatewayOrder).where(GatewayOrder.customer_id.in_(ids)).order_by(GatewayOrder.created_at)
        ).scalars()
    )
    payments = list(
        session.execute(
            select(GatewayPayment).where(GatewayPayment.order_id.in_([o.id for o in orders]))
        ).scalars()
    )
    refunds = list(
        session.execute(
            select(GatewayRefund).where(GatewayRefund.payment_id.in_([p.id for p in payments]))
        ).scalars()
    )
    out: list[dict[str, Any]] = []
    for order in orders:
        mine = [p for p in payments if p.order_id == order.id]
        out.append(
            {
                "order": order.gateway_order_id,
                "consumer_number": order.consumer_number,
                "amount_paise": order.amount_paise,
                "status": order.status,
                "created_at": order.created_at,
                "paid_at": order.paid_at,
                "payments": [
                    {
                        "payment": p.gateway_payment_id,
                        "method": p.method,
                        "vpa": p.vpa,
                        "status": p.status,
                        "amount_paise": p.amount_paise,
                        "refunded_paise": p.refunded_paise,
                        "at": p.created_at,
                        "refunds": [
                            {"amount_paise": r.amount_paise, "status": r.status, "at": r.created_at}
                            for r in refunds
                            if r.payment_id == p.id
                        ],
                    }
                    for p in mine
                ],
            }
        )
    return out


def _tickets(session: Session, connections: list[Customer]) -> list[dict[str, Any]]:
    tickets = list(
        session.execute(
            select(Ticket)
            .where(Ticket.customer_id.in_([c.id for c in connections]))
            .order_by(Ticket.raised_at)
        ).scalars()
    )
    ticket_ids = [t.id for t in tickets]
    replies = list(
        session.execute(
            select(TicketMessage)
            .where(TicketMessage.ticket_id.in_(ticket_ids), TicketMessage.visibility == "public")
            .order_by(TicketMessage.created_at)
        ).scalars()
    )
    steps = list(
        session.execute(
            select(WorkflowTransition)
            .where(WorkflowTransition.workflow == TICKET.name, WorkflowTransition.entity_id.in_(ticket_ids))
            .order_by(WorkflowTransition.at, WorkflowTransition.id)
        ).scalars()
    )
    return [
        {
            "number": t.number,
            "consumer_number": t.consumer_number,
            "category": t.category,
            "priority": t.priority,
            "description": t.description,
            "status": t.state,
            "raised_at": t.raised_at,
            "resolved_at": t.resolved_at,
            "resolution_note": t.resolution_note,
            "rating": t.rating,
            "rating_comment": t.rating_comment,
            "replies": [{"at": m.created_at, "text": m.body} for m in replies if m.ticket_id == t.id],
            "history": [
                {
                    "at": s.at,
                    "action": s.action,
                    "from": s.from_state,
                    "to": s.to_state,
                    "by": "you" if s.actor_kind == "customer" else "gas company",
                    "note": s.reason,
                }
                for s in steps
                if s.entity_id == t.id
            ],
        }
        for t in tickets
    ]


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot export {type(value).__name__}")
