"""Metering tables: signed readings as the meter made them, and the vend tokens they prove it accepted.

Readings are evidence signed by the meter, written once and never changed, so they carry no per-row audit;
each decoded row points at the exact frame it came from (`meter_signed_frame`), which keeps the bytes and the
MAC so anyone can re-verify it with the meter's reading key. Every unique key starts with `tenant_id` (the
distribution column on a sharded PostgreSQL) and then `meter_id`, so "the latest status of meter X" and "the
snapshots of meter X" are index range scans however many meters there are.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class MeterUpload(IdMixin, TenantScoped, Base):
    """One batch of signed frames received for a meter: who carried it in, and when. Written only when the
    batch held at least one frame not seen before, so a replayed upload leaves no trace."""

    __tablename__ = "meter_upload"
    __table_args__ = (Index("ix_meter_upload_meter_received", "tenant_id", "meter_id", "received_at"),)

    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter.id"))
    source: Mapped[str] = mapped_column(String(16))  # customer | staff | system
    uploaded_by: Mapped[str] = mapped_column(String(120))  # principal id or a system label
    received_at: Mapped[datetime]
    frames_received: Mapped[int]
    frames_new: Mapped[int]


class MeterSignedFrame(IdMixin, TenantScoped, Base):
    """The exact bytes of one signed response (MAC included): enough to verify the reading again."""

    __tablename__ = "meter_signed_frame"
    __table_args__ = (Index("uq_meter_signed_frame_hash", "tenant_id", "meter_id", "sha256", unique=True),)

    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter.id"))
    upload_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter_upload.id"))
    message_type: Mapped[str] = mapped_column(
        String(16)
    )  # status | registers | snapshots | events | parameters
    meter_at: Mapped[datetime]  # the meter clock the frame carries
    sha256: Mapped[str] = mapped_column(String(64))
    frame: Mapped[bytes] = mapped_column(LargeBinary)


class MeterStatusReading(IdMixin, TenantScoped, Base):
    """A STATUS reading: credit (paise or litres, the register's unit), valve, alarms, tariff."""

    __tablename__ = "meter_status_reading"
    __table_args__ = (Index("ix_meter_status_reading_latest", "tenant_id", "meter_id", "meter_at"),)

    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter.id"))
    frame_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter_signed_frame.id"))
    meter_at: Mapped[datetime]
    mode: Mapped[str] = mapped_column(String(8))  # currency | volume
    credit: Mapped[int]
    emergency_credit_available: Mapped[bool]
    emergency_credit_in_use: Mapped[int]
    friendly_debt: Mapped[int]
    valve: Mapped[str] = mapped_column(String(8))
    alarms: Mapped[list[str]] = mapped_column(JSON)
    tariff_paise_per_scm: Mapped[int]
    received_at: Mapped[datetime]


class MeterRegisterReading(IdMixin, TenantScoped, Base):
    """A REGISTERS reading: the meter's lifetime totals."""

    __tablename__ = "meter_register_reading"
    __table_args__ = (Index("ix_meter_register_reading_latest", "tenant_id", "meter_id", "meter_at"),)

    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter.id"))
    frame_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter_signed_frame.id"))
    meter_at: Mapped[datetime]
    cumulative_litres: Mapped[int]
    cumulative_credit_loaded: Mapped[int]
    tokens_accepted: Mapped[int]
    received_at: Mapped[datetime]


class MeterSnapshot(IdMixin, TenantScoped, Base):
    """The registers at the end of a day or a month (IST), as the meter recorded them; one per period."""

    __tablename__ = "meter_snapshot"
    __table_args__ = (
        Index("uq_meter_snapshot_period", "tenant_id", "meter_id", "kind", "period_end", unique=True),
    )

    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter.id"))
    frame_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter_signed_frame.id"))
    kind: Mapped[str] = mapped_column(String(8))  # monthly | daily
    period_end: Mapped[date]
    cumulative_litres: Mapped[int]
    credit: Mapped[int]


class MeterEventRecord(IdMixin, TenantScoped, Base):
    """One entry of the meter's event log; `seq` numbers the meter's events for its whole life."""

    __tablename__ = "meter_event"
    __table_args__ = (Index("uq_meter_event_seq", "tenant_id", "meter_id", "seq", unique=True),)

    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter.id"))
    frame_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter_signed_frame.id"))
    seq: Mapped[int]
    meter_at: Mapped[datetime]
    code: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(255))


class TokenConfirmation(IdMixin, TenantScoped, Base):
    """The meter has accepted the token with this TID: proved by a signed token event (accepted, or refused
    as already used). A vend token is pending until its TID is here."""

    __tablename__ = "meter_token_confirmation"
    __table_args__ = (Index("uq_meter_token_confirmation_tid", "tenant_id", "meter_id", "tid", unique=True),)

    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter.id"))
    tid: Mapped[int]
    vend_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("vend.id"))  # when a recent vend carried it
    accepted_at: Mapped[datetime]  # meter clock of the event
    event_seq: Mapped[int]
    evidence: Mapped[str] = mapped_column(String(32))  # the event's outcome, e.g. credit_added, used_error
    upload_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meter_upload.id"))
    received_at: Mapped[datetime]
