"""Gateway tables: our orders, the payments the gateway confirmed (the idempotency anchor of the online
channel), refunds, the webhook deliveries received, each tenant's merchant account, and the simulator's
own store of gateway-side entities."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from citygas.platform.auditable import Audited
from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class GatewayAccount(IdMixin, TenantScoped, Audited, Base):
    """A CGD's merchant account at a real gateway. The secrets are sealed with AES-GCM under the master
    key (the tenant id and purpose are the associated data, so a sealed secret cannot be moved to
    another tenant's row). A tenant without an account uses the simulator where it is enabled."""

    __tablename__ = "gateway_account"
    __table_args__ = (Index("uq_gateway_account_tenant", "tenant_id", unique=True),)

    provider: Mapped[str] = mapped_column(String(16))  # razorpay
    key_id: Mapped[str] = mapped_column(String(64))
    key_secret_sealed: Mapped[str] = mapped_column(String(400), info={"redact": True})
    webhook_secret_sealed: Mapped[str] = mapped_column(String(400), info={"redact": True})
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class GatewayOrder(IdMixin, TenantScoped, Audited, Base):
    """An order created at the gateway for one consumer number and amount; the payer pays against it.
    Its row is the lock that orders the checkout callback and the webhook of the same payment."""

    __tablename__ = "gateway_order"
    __table_args__ = (
        Index("uq_gateway_order_tenant_order", "tenant_id", "gateway_order_id", unique=True),
        Index("ix_gateway_order_tenant_customer", "tenant_id", "customer_id", "created_at"),
    )

    gateway: Mapped[str] = mapped_column(String(16))  # razorpay | simulator
    gateway_order_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customer.id"))
    consumer_number: Mapped[str] = mapped_column(String(24))
    amount_paise: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3), default="INR")
    status: Mapped[str] = mapped_column(String(16), default="created")  # created | paid
    created_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]


class GatewayPayment(IdMixin, TenantScoped, Audited, Base):
    """A payment the gateway captured. `(tenant, gateway_payment_id)` is unique: the callback and the
    webhook of one payment find the same row, and the vend's idempotency key is derived from it."""

    __tablename__ = "gateway_payment"
    __table_args__ = (
        Index("uq_gateway_payment_tenant_payment", "tenant_id", "gateway_payment_id", unique=True),
        Index("ix_gateway_payment_tenant_order", "tenant_id", "order_id"),
    )

    gateway_payment_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("gateway_order.id"))
    method: Mapped[str] = mapped_column(String(16))  # card | upi | netbanking | wallet
    vpa: Mapped[str] = mapped_column(String(100), default="")
    # captured (vended) | vend_failed (money in, no token: refund it) | refunded | partially_refunded
    status: Mapped[str] = mapped_column(String(20))
    amount_paise: Mapped[int]
    refunded_paise: Mapped[int] = mapped_column(default=0)
    vend_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("vend.id"))
    vend_error: Mapped[str] = mapped_column(String(300), default="")
    confirmed_by: Mapped[str] = mapped_column(String(16))  # callback | webhook
    created_at: Mapped[datetime]


class GatewayRefund(IdMixin, TenantScoped, Audited, Base):
    """Money sent back through the gateway. Unique on the gateway's refund id (the staff action and the
    `refund.processed` webhook record it once) and on our request key (a repeated click refunds once)."""

    __tablename__ = "gateway_refund"
    __table_args__ = (
        Index("uq_gateway_refund_tenant_refund", "tenant_id", "gateway_refund_id", unique=True),
        Index("uq_gateway_refund_tenant_request", "tenant_id", "request_key", unique=True),
        Index("ix_gateway_refund_tenant_payment", "tenant_id", "payment_id"),
    )

    gateway_refund_id: Mapped[str] = mapped_column(String(64))
    request_key: Mapped[str | None] = mapped_column(String(128))  # None when first seen on a webhook
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("gateway_payment.id"))
    amount_paise: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(300), default="")
    ledger_entry_id: Mapped[uuid.UUID | None]  # None: no token had been issued, so nothing was posted
    created_at: Mapped[datetime]


class GatewayWebhookDelivery(IdMixin, TenantScoped, Base):
    """Every genuine (signature-verified) webhook delivery, once: a replay of the same body, or a
    retry of the same event id, is recognised here and changes nothing. Forged deliveries are not
    stored — an unauthenticated caller must not be able to write rows — they are logged."""

    __tablename__ = "gateway_webhook_delivery"
    __table_args__ = (
        Index("uq_gateway_webhook_tenant_body", "tenant_id", "body_sha256", unique=True),
        Index("ix_gateway_webhook_tenant_event", "tenant_id", "event_id"),
    )

    body_sha256: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(64), default="")
    event: Mapped[str] = mapped_column(String(40), default="")
    gateway_payment_id: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(24), default="received")
    detail: Mapped[str] = mapped_column(String(300), default="")
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


class GatewaySimEntity(IdMixin, TenantScoped, Base):
    """The simulator's side of the gateway: orders, payments and refunds as Razorpay returns them
    (JSON entities). Only `GatewaySimulator` reads or writes it; a production gateway keeps its own."""

    __tablename__ = "gateway_sim_entity"
    __table_args__ = (Index("uq_gateway_sim_entity_tenant_entity", "tenant_id", "entity_id", unique=True),)

    entity_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # order | payment | refund
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
