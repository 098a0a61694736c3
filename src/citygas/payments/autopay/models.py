"""Auto top-up tables: the mandate of a connection (a process: its transitions are in `workflow_transition`)
and each debit made under it.

`autopay_mandate.live_key` is the connection's customer id while the mandate is active or paused and NULL
otherwise; unique per tenant, it lets one connection hold one working mandate at a time on both databases
(NULLs never collide), where a partial unique index would not be portable. `autopay_debit` is unique on
(mandate, sequence): the sequence is part of the vend's idempotency key."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from citygas.platform.auditable import Audited
from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class AutopayMandate(IdMixin, TenantScoped, Audited, Base):
    __tablename__ = "autopay_mandate"
    __table_args__ = (
        Index("ix_autopay_mandate_tenant_customer", "tenant_id", "customer_id", "created_at"),
        Index("ix_autopay_mandate_tenant_state", "tenant_id", "state"),
        Index("uq_autopay_mandate_tenant_live", "tenant_id", "live_key", unique=True),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"))
    consumer_number: Mapped[str] = mapped_column(String(24))
    # The states of `rules.MANDATE` (created, pending_authorisation, active, paused, and three final ones).
    state: Mapped[str] = mapped_column(String(24))
    live_key: Mapped[uuid.UUID | None]
    threshold_paise: Mapped[int]  # top up when the estimated balance falls below this
    amount_paise: Mapped[int]  # each top-up
    max_amount_paise: Mapped[int]  # the most one debit may take: the mandate's registered maximum
    max_debits_per_day: Mapped[int]
    max_debits_per_month: Mapped[int]
    frequency: Mapped[str] = mapped_column(String(16), default="as_presented")
    gateway: Mapped[str] = mapped_column(String(16))  # razorpay | simulator
    gateway_customer_id: Mapped[str] = mapped_column(String(64), default="")
    authorisation_order_id: Mapped[str] = mapped_column(String(64), default="")
    authorisation_payment_id: Mapped[str] = mapped_column(String(64), default="")
    token_id: Mapped[str] = mapped_column(String(64), default="")  # the gateway's mandate (token) id
    vpa: Mapped[str] = mapped_column(String(100), default="")  # the payer's UPI id; shown masked
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    next_sequence: Mapped[int] = mapped_column(default=1)
    retry_after: Mapped[datetime | None]  # no new debit before this, after a failed one
    replaces_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("autopay_mandate.id"))
    expires_at: Mapped[datetime]  # the mandate's end (the token's expire_at)
    state_reason: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime]
    activated_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads this mapping


class AutopayDebit(IdMixin, TenantScoped, Audited, Base):
    """One debit under a mandate: notified (pre-debit notice sent, the gateway's order exists) → debiting
    (the recurring payment is at the gateway) → succeeded (vended) | failed | vend_failed (money taken, the
    vend refused: refunded) | skipped (the mandate was paused or cancelled before the debit was made)."""

    __tablename__ = "autopay_debit"
    __table_args__ = (
        Index("uq_autopay_debit_tenant_mandate_seq", "tenant_id", "mandate_id", "sequence", unique=True),
        Index("ix_autopay_debit_tenant_state", "tenant_id", "state", "debit_after"),
    )

    mandate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("autopay_mandate.id"))
    sequence: Mapped[int]
    amount_paise: Mapped[int]
    state: Mapped[str] = mapped_column(String(16))
    balance_paise: Mapped[int | None]  # the estimated balance that triggered it
    gateway_order_id: Mapped[str] = mapped_column(String(64))
    gateway_payment_id: Mapped[str] = mapped_column(String(64), default="")
    notified_at: Mapped[datetime]
    debit_after: Mapped[datetime]  # the end of the pre-debit notice window
    attempted_at: Mapped[datetime | None]
    settled_at: Mapped[datetime | None]
    vend_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("vend.id"))
    refund_id: Mapped[str] = mapped_column(String(64), default="")
    failure_reason: Mapped[str] = mapped_column(String(300), default="")
