"""API shapes of meters. Key material never appears here."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class MeterOut(BaseModel):
    serial: str
    sts_meter_number: str
    model: str
    mode: str
    state: str
    consumer_number: str | None
    sgc: str
    krn: int
    ti: int
    base_date: int
    ken: int
    last_tid: int | None
    key_change_pending: bool
    created_at: datetime


class MeterPage(BaseModel):
    items: list[MeterOut]
    next_cursor: str | None


class TransitionOut(BaseModel):
    action: str
    from_state: str | None
    to_state: str
    actor: str
    reason: str | None
    at: datetime
