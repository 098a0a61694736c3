"""Settlement tables: one row per settlement imported (a bank credit from the gateway or BBPS), and one per
line of it with the outcome of matching it to our vends."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from citygas.platform.auditable import Audited
from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class Settlement(IdMixin, TenantScoped, Audited, Base):
    """One settlement, imported once: `(tenant, source, settlement_id)` is unique, so importing the same
    report again finds this row and changes nothing. `content_sha256` covers its lines, so a report that
    re-uses a settlement id with other lines is refused instead of silently ignored."""

    __tablename__ = "settlement"
    __table_args__ = (
        Index("uq_settlement_tenant_source_id", "tenant_id", "source", "settlement_id", unique=True),
        Index("ix_settlement_tenant_settled", "tenant_id", "settled_at"),
    )

    source: Mapped[str] = mapped_column(String(16))  # gateway | bbps
    settlement_id: Mapped[str] = mapped_column(String(64))
    content_sha256: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(200), default="")
    settled_at: Mapped[datetime]  # the latest settled_at of its lines
    line_count: Mapped[int]
    matched_count: Mapped[int]
    mismatch_count: Mapped[int]
    extra_count: Mapped[int]
    duplicate_count: Mapped[int]
    other_count: Mapped[int]
    gross_paise: Mapped[int]
    fee_paise: Mapped[int]
    tax_paise: Mapped[int]
    net_paise: Mapped[int]
    clearing_paise: Mapped[int]
    suspense_paise: Mapped[int]
    ledger_entry_id: Mapped[uuid.UUID | None]
    imported_at: Mapped[datetime]
    imported_by: Mapped[str] = mapped_column(String(200))


class SettlementLine(IdMixin, TenantScoped, Base):
    """A line of a settlement and what matching decided. Written with its settlement (which is audited
    with its totals) and never changed."""

    __tablename__ = "settlement_line"
    __table_args__ = (
        Index("ix_settlement_line_settlement", "settlement_id", "line_no"),
        # "Was this payment settled before?" and "which vends are not settled yet?" read this index.
        Index("ix_settlement_line_tenant_payment", "tenant_id", "payment_id"),
    )

    settlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlement.id"))
    line_no: Mapped[int]
    payment_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    amount_paise: Mapped[int]
    fee_paise: Mapped[int]
    tax_paise: Mapped[int]
    settled_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))
    vend_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("vend.id"))
    our_amount_paise: Mapped[int | None]
