"""The vend API for the CGD's own channels (B2B): `POST /api/v1/vends` and `GET /api/v1/vends/{vend_id}`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from citygas.identity.principal import Principal
from citygas.identity.rules import Permission
from citygas.platform.errors import PermissionDenied
from citygas.platform.uow import UnitOfWork
from citygas.vending.batching import batcher_for
from citygas.vending.rules import Channel, VendRequest
from citygas.vending.service import get_vend, vend_body
from citygas.web.deps import Requires, uow_with

router = APIRouter(prefix="/api/v1/vends", tags=["vending"])

# The channels an API caller may name. The others (online, upi, bbps, csc) reach the vend through their own
# integrations, which verify the money first: a B2B key can only say that the money came through the CGD.
API_CHANNELS = {Channel.B2B}


class VendIn(BaseModel):
    consumer_number: str | None = Field(default=None, max_length=24)
    meter_serial: str | None = Field(default=None, max_length=32)
    amount_paise: int = Field(gt=0, le=100_000_000, description="whole paise: ₹500 is 50000")
    channel: Channel = Channel.B2B
    payment_reference: str = Field(default="", max_length=128)

    @model_validator(mode="after")
    def _one_target(self) -> VendIn:
        if bool(self.consumer_number) == bool(self.meter_serial):
            raise ValueError("give either consumer_number or meter_serial")
        return self


class TokenOut(BaseModel):
    kind: str  # key_change, set_tariff_rate or credit: enter them on the meter in this order
    token: str
    tid: int | None  # key change tokens carry none


class VendOut(BaseModel):
    vend_id: str
    receipt_number: str
    channel: str
    amount_paise: int
    gas_credit_paise: int
    gas_litres: int
    vat_paise: int
    rate_paise_per_scm: int
    deductions: list[dict[str, Any]]
    tokens: list[TokenOut]
    customer: dict[str, str]
    meter: dict[str, Any]
    payment_reference: str
    created_at: str


@router.post(
    "",
    response_model=VendOut,
    status_code=201,
    responses={
        200: {"description": "a retry: the first top-up, unchanged"},
        409: {"description": "this Idempotency-Key was used for a different top-up"},
    },
)
async def create_vend(
    request: Request,
    body: VendIn,
    principal: Annotated[Principal, Depends(Requires(Permission.VEND_CREATE))],
    idempotency_key: Annotated[str, Header(min_length=1, max_length=100, alias="Idempotency-Key")],
) -> JSONResponse:
    """Vend gas credit. Send the same `Idempotency-Key` to retry safely: the same body gets the first answer
    (200), a different body under that key gets 409. Vends arriving together are written together
    (`vending.batching`), each with its own answer."""
    if body.channel not in API_CHANNELS:
        raise PermissionDenied(
            f"the API vends on the b2b channel; {body.channel.value} has its own integration"
        )
    vend_request = VendRequest(
        channel=body.channel,
        amount_paise=body.amount_paise,
        idempotency_key=f"api:{principal.id}:{idempotency_key}",
        consumer_number=body.consumer_number,
        meter_serial=body.meter_serial,
        payment_reference=body.payment_reference,
    )
    state = request.app.state
    batcher = batcher_for(state, state.db, state.settings.master_key_bytes)
    answer = await batcher.vend(principal, vend_request, getattr(request.state, "request_id", None))
    return JSONResponse(answer.body, status_code=200 if answer.replayed else 201)


@router.get("/{vend_id}", response_model=VendOut)
def read_vend(
    vend_id: uuid.UUID, uow: Annotated[UnitOfWork, Depends(uow_with(Permission.VEND_VIEW))]
) -> dict[str, Any]:
    return vend_body(uow.session, get_vend(uow.session, vend_id))
