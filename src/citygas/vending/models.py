"""Vend tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from citygas.platform.auditable import Audited
from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class Vend(IdMixin, TenantScoped, Audited, Base):
    """One top-up: the money, what the waterfall took, the tokens, the receipt. Written once, in the same
    transaction as its ledger entry; a retry with the same idempotency key finds it and returns it."""

    __tablename__ = "vend"
    __table_args__ = (
        Index("uq_vend_tenant_idempotency", "tenant_id", "idempotency_key", unique=True),
        Index("uq_vend_tenant_receipt", "tenant_id", "receipt_number", unique=True),
        Index("ix_vend_customer_created", "tenant_id", "customer_id", "created_at"),
    )

    idempotency_key: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8))
    source_party: Mapped[str | None] = mapped_column(String(64))
    payment_reference: Mapped[str] = mapped_column(String(128), default="")
    receipt_number: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"))
    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter.id"))
    amount_paise: Mapped[int]
    gas_credit_paise: Mapped[int]  # the value the meter credits (what the token carries, in paise)
    gas_litres: Mapped[int]  # the gas the credit buys at the vend's rate (volume meters carry this)
    vat_paise: Mapped[int]
    rounding_paise: Mapped[int]
    rate_paise_per_scm: Mapped[int]
    deductions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    tokens: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{"kind", "token", "tid"}], in entry order
    ledger_entry_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime]


class VendClaim(Base):
    """The idempotency key of a vend, claimed before anything else is written."""

    __tablename__ = "vend_claim"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime]
