"""CSC agent tables: the agent profile, float top-ups (a small approval process), and the agent's vends.

The float itself is not a column: it is the ledger balance of `agent_float(party=agent id)`, so it can
never disagree with the books and `citygas ledger rebuild` reproduces it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from citygas.platform.auditable import Audited
from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class CscAgent(IdMixin, TenantScoped, Audited, Base):
    """A village-level entrepreneur's profile, one per `csc_agent` staff user.

    Commission is stored in units that cannot be confused: basis points (1000 = 10 %) or whole paise,
    never a bare "percentage" number. `version` is bumped by a conditional UPDATE at the start of every
    vend, which locks the row, so one agent's vends queue and the float check sees the last one's debit."""

    __tablename__ = "csc_agent"
    __table_args__ = (
        Index("uq_csc_agent_tenant_user", "tenant_id", "user_id", unique=True),
        Index("uq_csc_agent_tenant_csc_id", "tenant_id", "csc_id", unique=True),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_user.id"))
    csc_id: Mapped[str] = mapped_column(String(32))  # the CSC network's own id of the kiosk
    name: Mapped[str] = mapped_column(String(200))
    village: Mapped[str] = mapped_column(String(120))
    commission_percent_bp: Mapped[int | None]  # 1 bp = 0.01 %; set for a percentage rule
    commission_flat_paise: Mapped[int | None]  # set for a flat rule
    commission_cap_paise: Mapped[int | None]  # optional cap per vend
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(default=1)


class FloatTopup(IdMixin, TenantScoped, Audited, Base):
    """Money an agent paid the CGD (bank transfer or UPI) to be added to the float once the back office
    has seen it arrive. States: requested → approved | rejected (history in `workflow_transition`)."""

    __tablename__ = "csc_float_topup"
    __table_args__ = (
        Index("ix_csc_float_topup_agent", "tenant_id", "agent_id", "requested_at"),
        Index("ix_csc_float_topup_reference", "tenant_id", "reference"),
    )

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("csc_agent.id"))
    amount_paise: Mapped[int]
    reference: Mapped[str] = mapped_column(String(64))  # the bank UTR or UPI reference of the payment
    note: Mapped[str] = mapped_column(String(300), default="")
    state: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    ledger_entry_id: Mapped[uuid.UUID | None]


class CscVend(IdMixin, TenantScoped, Audited, Base):
    """One vend an agent made from the float: links the vend to the agent, the form's `client_ref` (so a
    double-clicked button vends once) and the commission earned."""

    __tablename__ = "csc_vend"
    __table_args__ = (
        Index("uq_csc_vend_agent_client_ref", "tenant_id", "agent_id", "client_ref", unique=True),
        Index("ix_csc_vend_agent_created", "tenant_id", "agent_id", "created_at"),
    )

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("csc_agent.id"))
    vend_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vend.id"))
    client_ref: Mapped[str] = mapped_column(String(64))
    consumer_number: Mapped[str] = mapped_column(String(24))
    amount_paise: Mapped[int]
    commission_paise: Mapped[int]
    commission_entry_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime]


class CommissionPayout(IdMixin, TenantScoped, Audited, Base):
    """Commission paid out to an agent by bank transfer or UPI for a month: the ledger entry moves it from
    `commission_payable(agent)` to the bank. One payment reference pays once (`uq_..._reference`), so a
    form sent twice records one payout."""

    __tablename__ = "csc_commission_payout"
    __table_args__ = (
        Index("uq_csc_commission_payout_reference", "tenant_id", "reference", unique=True),
        Index("ix_csc_commission_payout_agent", "tenant_id", "agent_id", "paid_at"),
    )

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("csc_agent.id"))
    period: Mapped[str] = mapped_column(String(7))  # the month paid for, YYYY-MM (India business dates)
    amount_paise: Mapped[int]
    reference: Mapped[str] = mapped_column(String(64))  # the bank UTR or UPI reference of the payment
    note: Mapped[str] = mapped_column(String(300), default="")
    paid_by: Mapped[str] = mapped_column(String(200))
    paid_by_id: Mapped[uuid.UUID | None]  # the staff user who recorded it (none for a system actor)
    paid_at: Mapped[datetime]
    ledger_entry_id: Mapped[uuid.UUID]
