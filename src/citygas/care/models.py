"""Care tables: tickets and the messages on them. The ticket's process history lives in the platform's
`workflow_transition` rows (workflow `care_ticket`) and its place in the queue in `work_item`."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citygas.platform.auditable import Audited
from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class Ticket(IdMixin, TenantScoped, Audited, Base):
    """A complaint, service request or gas-leak emergency about one connection."""

    __tablename__ = "care_ticket"
    __table_args__ = (
        Index("uq_care_ticket_tenant_number", "tenant_id", "number", unique=True),
        # One live emergency per connection: set to the connection's id while a leak ticket is live and
        # cleared when it is resolved or cancelled, so a second press of the red button (or a double
        # click racing the first) can never make a second ticket.
        Index("uq_care_ticket_tenant_live_emergency", "tenant_id", "live_emergency_key", unique=True),
        Index("ix_care_ticket_tenant_customer", "tenant_id", "customer_id", "raised_at"),
        Index("ix_care_ticket_tenant_state", "tenant_id", "state", "priority"),
    )

    number: Mapped[str] = mapped_column(String(24))  # DGN-T-00000001, gap-free per tenant
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"))
    consumer_number: Mapped[str] = mapped_column(String(24))
    category: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # complaint | request | emergency
    priority: Mapped[str] = mapped_column(String(16))  # emergency | high | normal
    description: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(16), default="app")  # app | care (an agent on a call)
    raised_by: Mapped[str] = mapped_column(String(200))
    raised_at: Mapped[datetime]
    clock_started_at: Mapped[datetime]  # raised, or last reopened: the SLA clocks run from here
    acknowledged_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    resolution_note: Mapped[str] = mapped_column(String(500), default="")
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    assignee_label: Mapped[str] = mapped_column(String(200), default="")
    rating: Mapped[int | None]
    rating_comment: Mapped[str] = mapped_column(String(500), default="")
    rated_at: Mapped[datetime | None]
    live_emergency_key: Mapped[str | None] = mapped_column(String(40))


class TicketMessage(IdMixin, TenantScoped, Audited, Base):
    """A reply the household sees (`public`) or a note only staff see (`internal`)."""

    __tablename__ = "care_ticket_message"
    __table_args__ = (Index("ix_care_ticket_message_ticket", "tenant_id", "ticket_id", "created_at"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("care_ticket.id"))
    visibility: Mapped[str] = mapped_column(String(16))  # public | internal
    body: Mapped[str] = mapped_column(Text)
    author_kind: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[uuid.UUID | None]
    author_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
