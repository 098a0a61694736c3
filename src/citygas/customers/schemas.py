"""API shapes of customers."""

from __future__ import annotations

from pydantic import BaseModel


class CustomerOut(BaseModel):
    consumer_number: str
    name: str
    status: str
    charge_area_code: str
    phone_masked: str


class MeterSummary(BaseModel):
    serial: str
    sts_meter_number: str
    state: str
    mode: str


class VendLimitsOut(BaseModel):
    """What a vending channel may take from this customer now (a BBPS bill fetch shows these)."""

    minimum_paise: int
    maximum_paise: int
    daily_paise: int
    daily_count: int
    can_vend: bool
    reason: str | None


class CustomerDetail(CustomerOut):
    meter: MeterSummary | None
    vend_limits: VendLimitsOut


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    next_cursor: str | None
