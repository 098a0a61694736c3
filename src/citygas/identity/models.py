"""Identity tables."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from citygas.platform.auditable import Audited
from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class StaffUser(IdMixin, TenantScoped, Audited, Base):
    __tablename__ = "staff_user"

    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(16), default="")
    password_hash: Mapped[str] = mapped_column(String(200), info={"redact": True})
    totp_secret: Mapped[str | None] = mapped_column(String(64), info={"redact": True})
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    roles: Mapped[list[StaffRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def role_names(self) -> frozenset[str]:
        return frozenset(r.role for r in self.roles)


class StaffRole(IdMixin, TenantScoped, Audited, Base):
    __tablename__ = "staff_role"
    __table_args__ = (Index("uq_staff_role_user_role", "user_id", "role", unique=True),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    user: Mapped[StaffUser] = relationship(back_populates="roles")


class WebSession(IdMixin, Base):
    """A logged-in browser. Looked up by the hash of its cookie before any tenant is known, so it is
    read in the platform scope only, by `identity.service`."""

    __tablename__ = "web_session"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # staff | customer
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), index=True)
    staff_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"))
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]


class ApiKey(IdMixin, TenantScoped, Audited, Base):
    """A B2B client's key. Only a SHA-256 of the secret is kept: keys are long random strings, so a
    slow hash adds nothing but latency to every API call."""

    __tablename__ = "api_key"

    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64), info={"redact": True})
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class OtpChallenge(IdMixin, Base):
    """A one-time password sent to a phone. Platform-scoped: the phone is known before the tenant."""

    __tablename__ = "otp_challenge"
    __table_args__ = (Index("ix_otp_phone_created", "phone", "created_at"),)

    phone: Mapped[str] = mapped_column(String(16))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    consumed_at: Mapped[datetime | None]
