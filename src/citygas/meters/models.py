"""Meter registry tables: models (the catalogue), meters, and the tenant's vending keys (encrypted)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from citygas.platform.auditable import Audited
from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class MeterModel(IdMixin, TenantScoped, Audited, Base):
    """A meter type in the CGD's catalogue, e.g. a G1.6 prepaid meter with Bluetooth."""

    __tablename__ = "meter_model"
    __table_args__ = (Index("uq_meter_model_tenant_code", "tenant_id", "code", unique=True),)

    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    manufacturer: Mapped[str] = mapped_column(String(120))
    manufacturer_code: Mapped[int]  # STS MfrCode
    qmax_litres_per_hour: Mapped[int]  # G1.6: 2.5 m³/h
    mode: Mapped[str] = mapped_column(String(8))  # currency | volume
    credit_subclass: Mapped[int]  # STS class 0 subclass: 2 gas volume, 6 gas currency
    base_units_per_count: Mapped[int]  # litres (volume) or paise (currency) per STS amount count
    token_classes: Mapped[list[int]] = mapped_column(JSON)
    bluetooth: Mapped[bool] = mapped_column(default=True)


class VendingKey(IdMixin, TenantScoped, Audited, Base):
    """A vending key, AES-GCM encrypted under the master key (the `SoftwareKeyVault` blob). The
    plaintext never leaves `citygas.sts` during a derivation; no page or API shows it."""

    __tablename__ = "vending_key"
    __table_args__ = (Index("uq_vending_key_tenant_key_id", "tenant_id", "key_id", unique=True),)

    key_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    sgc: Mapped[str] = mapped_column(String(6))
    dkga: Mapped[str] = mapped_column(String(2))
    is_test_key: Mapped[bool] = mapped_column(default=False)
    vault_blob: Mapped[dict[str, Any]] = mapped_column(JSON, info={"redact": True})
    created_at: Mapped[datetime]


class Meter(IdMixin, TenantScoped, Audited, Base):
    __tablename__ = "meter"
    __table_args__ = (
        Index("uq_meter_tenant_serial", "tenant_id", "serial", unique=True),
        Index("uq_meter_tenant_sts_number", "tenant_id", "sts_meter_number", unique=True),
        Index("ix_meter_customer", "tenant_id", "customer_id"),
    )

    serial: Mapped[str] = mapped_column(String(32))
    sts_meter_number: Mapped[str] = mapped_column(String(18))  # the STS MeterPAN, Luhn-checked
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter_model.id"))
    vending_key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vending_key.id"))
    sgc: Mapped[str] = mapped_column(String(6))
    krn: Mapped[int]
    kt: Mapped[int]
    ti: Mapped[int]
    base_date: Mapped[int]
    ea: Mapped[str] = mapped_column(String(2))
    dkga: Mapped[str] = mapped_column(String(2))
    ken: Mapped[int]
    last_tid: Mapped[int | None]
    key_change_pending: Mapped[bool] = mapped_column(default=False)
    # What the pending key change installs; sent as key change tokens ahead of the meter's next vend.
    pending_krn: Mapped[int | None]
    pending_ti: Mapped[int | None]
    pending_rollover: Mapped[bool] = mapped_column(default=False)
    # The rate a currency-mode meter prices gas with, as far as the platform knows (None: never sent).
    tariff_on_meter: Mapped[int | None]
    state: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customer.id"))
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("meter.id"))
    simulated: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads this mapping
