"""Customer tables."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from citygas.platform.auditable import Audited
from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class Customer(IdMixin, TenantScoped, Audited, Base):
    __tablename__ = "customer"
    __table_args__ = (
        Index("uq_customer_tenant_consumer_number", "tenant_id", "consumer_number", unique=True),
        Index("ix_customer_phone", "phone"),
    )

    consumer_number: Mapped[str] = mapped_column(String(24))
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(16))
    email: Mapped[str] = mapped_column(String(200), default="")
    charge_area_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("charge_area.id"), index=True)
    address: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(24), default="registered")
    language: Mapped[str] = mapped_column(String(5), default="en")
    created_at: Mapped[datetime]
