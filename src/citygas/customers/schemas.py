"""API shapes of customers."""

from __future__ import annotations

from pydantic import BaseModel


class CustomerOut(BaseModel):
    consumer_number: str
    name: str
    status: str
    charge_area_code: str
    phone_masked: str


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    next_cursor: str | None
