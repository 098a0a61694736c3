"""API shapes of the BBPS biller channel. Amounts are whole paise (BBPS carries paise too)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field

from citygas.payments.bbps.rules import PaymentChannel, PaymentMode

TXN_REF = r"^[A-Za-z0-9]{6,35}$"
MOBILE = r"^[6-9][0-9]{9}$"
AGENT_ID = r"^[A-Za-z0-9]{1,40}$"


class BillFetchIn(BaseModel):
    consumer_number: str = Field(min_length=1, max_length=24, description="the CGD's consumer number")
    agent_id: str = Field(default="", pattern=r"^[A-Za-z0-9]{0,40}$", description="BBPS agent id")
    payment_channel: PaymentChannel | None = None
    customer_mobile: str | None = Field(default=None, pattern=MOBILE)


class PrepaidBill(BaseModel):
    bill_type: str = "prepaid"
    due_amount_paise: None = Field(default=None, description="a prepaid account never owes a bill")
    minimum_amount_paise: int
    maximum_amount_paise: int
    amount_exactness: str = "RANGE"  # any amount between the minimum and the maximum


class BillFetchOut(BaseModel):
    fetch_reference: str
    consumer_number: str
    customer_name: str = Field(description="masked as BBPS shows it: first letter of each word")
    customer_status: str
    bill: PrepaidBill
    valid_until: str


class PaymentIn(BaseModel):
    bbps_txn_ref: str = Field(pattern=TXN_REF, description="BBPS transaction reference id")
    consumer_number: str = Field(min_length=1, max_length=24)
    amount_paise: int = Field(gt=0, le=100_000_000, strict=True, description="whole paise: ₹500 is 50000")
    fetch_reference: str | None = Field(default=None, max_length=40)
    paid_at: AwareDatetime
    payment_mode: PaymentMode
    payment_channel: PaymentChannel
    agent_id: str = Field(pattern=AGENT_ID)
    customer_mobile: str | None = Field(default=None, pattern=MOBILE)


class TokenOut(BaseModel):
    kind: str
    token: str
    grouped: str
    tid: int


class PaymentOut(BaseModel):
    status: str
    bbps_txn_ref: str
    approval_ref_number: str = Field(description="our receipt number, BBPS's biller approval reference")
    receipt_number: str
    vend_id: str
    consumer_number: str
    amount_paise: int
    gas_credit_paise: int
    meter_serial: str
    tokens: list[TokenOut]
    token_delivery: list[str]
    fetch_reference: str | None
    paid_at: str
    payment_mode: str
    payment_channel: str
    agent_id: str
