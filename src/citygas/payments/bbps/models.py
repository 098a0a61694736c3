"""BBPS tables: the bills we quoted (bill fetch) and the payments BBPS told us about."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from citygas.platform.auditable import Audited
from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class BbpsBillFetch(IdMixin, TenantScoped, Base):
    """One bill fetch: what we quoted (limits, masked name) and to which agent. A payment may name it by
    `fetch_reference`; it then must be for the same consumer and still valid. Not audited row by row: it
    changes nothing and is written once, like a log line the BBPS dispute process can ask about."""

    __tablename__ = "bbps_bill_fetch"
    __table_args__ = (
        Index("uq_bbps_bill_fetch_tenant_reference", "tenant_id", "fetch_reference", unique=True),
    )

    fetch_reference: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"))
    consumer_number: Mapped[str] = mapped_column(String(24))
    agent_id: Mapped[str] = mapped_column(String(40), default="")
    payment_channel: Mapped[str] = mapped_column(String(16), default="")
    minimum_paise: Mapped[int]
    maximum_paise: Mapped[int]
    fetched_at: Mapped[datetime]
    valid_until: Mapped[datetime]


class BbpsPayment(IdMixin, TenantScoped, Audited, Base):
    """A BBPS payment notification that vended. Written in the vend's transaction, so a payment either has
    its vend or does not exist; `bbps_txn_ref` is unique, so a retried notification finds this row."""

    __tablename__ = "bbps_payment"
    __table_args__ = (
        Index("uq_bbps_payment_tenant_txn_ref", "tenant_id", "bbps_txn_ref", unique=True),
        Index("ix_bbps_payment_tenant_paid", "tenant_id", "paid_at"),
    )

    bbps_txn_ref: Mapped[str] = mapped_column(String(40))
    consumer_number: Mapped[str] = mapped_column(String(24))
    amount_paise: Mapped[int]
    fetch_reference: Mapped[str | None] = mapped_column(String(40))
    paid_at: Mapped[datetime]
    payment_mode: Mapped[str] = mapped_column(String(24))
    payment_channel: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str] = mapped_column(String(40))
    customer_mobile_last4: Mapped[str] = mapped_column(String(4), default="")  # the payer's, masked
    vend_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vend.id"))
    received_at: Mapped[datetime]
