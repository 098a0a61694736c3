"""A household's own settings: notification preferences, consents (DPDP Act 2023) and data export
requests. Keyed by the household's phone within a tenant: one login covers every connection registered
to that phone, and so do these choices. All three are `Audited`, so the audit log records who changed
what and when; the rows also carry the last change for the profile page."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citygas.platform.auditable import Audited
from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class NotificationPreference(IdMixin, TenantScoped, Audited, Base):
    """The channels a household wants for one topic. No row: the topic's defaults."""

    __tablename__ = "customer_notification_preference"
    __table_args__ = (
        Index("uq_customer_notification_preference", "tenant_id", "household_phone", "topic", unique=True),
    )

    household_phone: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str] = mapped_column(String(32))
    sms: Mapped[bool]
    whatsapp: Mapped[bool]
    email: Mapped[bool]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200))


class Consent(IdMixin, TenantScoped, Audited, Base):
    """A household's consent to one optional purpose. Given and withdrawn times are kept on the row; every
    change before them is in the audit log. No row: never given."""

    __tablename__ = "customer_consent"
    __table_args__ = (Index("uq_customer_consent", "tenant_id", "household_phone", "purpose", unique=True),)

    household_phone: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(32))
    given: Mapped[bool]
    given_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    notice_version: Mapped[str] = mapped_column(String(16))  # the notice the household saw when it gave it
    updated_by: Mapped[str] = mapped_column(String(200))


class DataExport(IdMixin, TenantScoped, Audited, Base):
    """'Download my data': requested → ready (the JSON is built by a background handler) → expired (the
    content is deleted after its expiry). The content is redacted from the audit log: it is the household's
    data itself, tokens included."""

    __tablename__ = "customer_data_export"
    __table_args__ = (
        Index("ix_customer_data_export_household", "tenant_id", "household_phone", "requested_at"),
        # Set to the phone while a request is being built: a double click asks once.
        Index("uq_customer_data_export_pending", "tenant_id", "pending_key", unique=True),
    )

    household_phone: Mapped[str] = mapped_column(String(16))
    requested_by_customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"))
    status: Mapped[str] = mapped_column(String(16))  # requested | ready | expired
    requested_at: Mapped[datetime]
    ready_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    content: Mapped[str | None] = mapped_column(Text, info={"redact": True})
    size_bytes: Mapped[int] = mapped_column(default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    pending_key: Mapped[str | None] = mapped_column(String(16))
