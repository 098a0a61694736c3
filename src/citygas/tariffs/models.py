"""Tariff tables. Rates are versions with an effective-from moment: a change is a new row, never an edit,
so the rate in force at any past moment can always be read back."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from citygas.platform.auditable import Audited
from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class GasTariff(IdMixin, TenantScoped, Audited, Base):
    """The price of gas per SCM, before VAT, in a charge area from `effective_from` on."""

    __tablename__ = "gas_tariff"
    __table_args__ = (
        Index("uq_gas_tariff_area_from", "tenant_id", "charge_area_id", "effective_from", unique=True),
        CheckConstraint("rate_paise_per_scm > 0", name="rate_positive"),
    )

    charge_area_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("charge_area.id"))
    effective_from: Mapped[datetime]
    rate_paise_per_scm: Mapped[int]
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]


class TaxRate(IdMixin, TenantScoped, Audited, Base):
    """A tax rule as data: VAT on gas per state, GST on services ('IN'), in basis points (1800 = 18 %)."""

    __tablename__ = "tax_rate"
    __table_args__ = (
        Index("uq_tax_rate_tax_region_from", "tenant_id", "tax", "region", "effective_from", unique=True),
        CheckConstraint("rate_bp >= 0 AND rate_bp <= 10000", name="rate_bp_range"),
    )

    tax: Mapped[str] = mapped_column(String(8))
    region: Mapped[str] = mapped_column(String(64))
    effective_from: Mapped[datetime]
    rate_bp: Mapped[int]
    created_at: Mapped[datetime]


class ChargeRate(IdMixin, TenantScoped, Audited, Base):
    """A charge (connection, security deposit, fixed monthly) in a charge area, before GST."""

    __tablename__ = "charge_rate"
    __table_args__ = (
        Index(
            "uq_charge_rate_area_kind_from",
            "tenant_id",
            "charge_area_id",
            "kind",
            "effective_from",
            unique=True,
        ),
        CheckConstraint("amount_paise >= 0", name="amount_not_negative"),
    )

    charge_area_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("charge_area.id"))
    kind: Mapped[str] = mapped_column(String(24))
    effective_from: Mapped[datetime]
    amount_paise: Mapped[int]
    created_at: Mapped[datetime]


class InstalmentPlan(IdMixin, TenantScoped, Audited, Base):
    """How a customer pays a charge off from top-ups. What is still owed lives in the ledger (the
    customer's instalment receivable), not here, so it cannot drift from the money."""

    __tablename__ = "instalment_plan"
    __table_args__ = (
        Index("ix_instalment_plan_customer", "tenant_id", "customer_id", "status"),
        CheckConstraint(
            "(method = 'fixed' AND fixed_paise > 0 AND percent_bp IS NULL AND cap_paise IS NULL) OR "
            "(method = 'percent' AND fixed_paise IS NULL AND percent_bp > 0 AND percent_bp <= 10000 "
            "AND cap_paise > 0)",
            name="terms",
        ),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"))
    purpose: Mapped[str] = mapped_column(String(40))
    total_paise: Mapped[int]
    method: Mapped[str] = mapped_column(String(8))
    fixed_paise: Mapped[int | None]
    percent_bp: Mapped[int | None]
    cap_paise: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime]


class TariffNotice(IdMixin, TenantScoped, Base):
    """That a customer was sent the notice of a gas price version: at most one per (tariff, customer),
    so a re-run of the notice batches never texts a household twice. Not `Audited`: it is itself the
    record of a message sent (like a delivery log), one row per connection in the area, and auditing it
    would double the writes of a large batch for no added knowledge."""

    __tablename__ = "tariff_notice"
    __table_args__ = (
        Index("uq_tariff_notice_tariff_customer", "tenant_id", "tariff_id", "customer_id", unique=True),
    )

    tariff_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("gas_tariff.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"))
    language: Mapped[str] = mapped_column(String(5))
    sent_at: Mapped[datetime]
