"""The BBPS biller API: the BBPS operating unit (our BOU) calls these with an API key of scope `bbps`.

`POST /api/v1/bbps/bill-fetch` · `POST /api/v1/bbps/payments` · `GET /api/v1/bbps/payments/{bbps_txn_ref}`.
Errors are `application/problem+json` with a stable `code`; a refused call changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from citygas.identity.rules import Permission
from citygas.payments.bbps.schemas import TXN_REF, BillFetchIn, BillFetchOut, PaymentIn, PaymentOut
from citygas.payments.bbps.service import (
    PaymentNotice,
    do_accept_payment,
    do_fetch_bill,
    fetch_answer,
    get_payment,
    payment_answer,
)
from citygas.platform.uow import UnitOfWork
from citygas.web.deps import uow_with

router = APIRouter(prefix="/api/v1/bbps", tags=["bbps"])
Biller = Annotated[UnitOfWork, Depends(uow_with(Permission.BBPS_BILLER))]


@router.post(
    "/bill-fetch",
    response_model=BillFetchOut,
    responses={404: {"description": "unknown_consumer"}, 422: {"description": "consumer_not_payable"}},
)
def bill_fetch(body: BillFetchIn, uow: Biller) -> dict[str, Any]:
    """A prepaid account's "bill": the masked name, no amount due, the amounts BBPS may collect."""
    fetch, customer = do_fetch_bill(
        uow.session,
        consumer_number=body.consumer_number,
        agent_id=body.agent_id,
        payment_channel=body.payment_channel,
    )
    answer = fetch_answer(fetch, customer)
    uow.commit()
    return answer


@router.post(
    "/payments",
    response_model=PaymentOut,
    responses={
        404: {"description": "unknown_consumer"},
        409: {"description": "idempotency_conflict: this bbps_txn_ref paid another amount or consumer"},
        422: {
            "description": "validation_error, amount_out_of_range, fetch_reference_invalid, meter_not_active"
        },
    },
)
def payment_notification(request: Request, body: PaymentIn, uow: Biller) -> dict[str, Any]:
    """BBPS collected the money: vend, answer with the receipt and tokens (also sent by SMS). A retried
    notification with the same `bbps_txn_ref` gets the first answer, unchanged."""
    accepted = do_accept_payment(
        uow.session,
        PaymentNotice(
            bbps_txn_ref=body.bbps_txn_ref,
            consumer_number=body.consumer_number,
            amount_paise=body.amount_paise,
            paid_at=body.paid_at,
            payment_mode=body.payment_mode,
            payment_channel=body.payment_channel,
            agent_id=body.agent_id,
            fetch_reference=body.fetch_reference,
            customer_mobile=body.customer_mobile,
        ),
        master_key=request.app.state.settings.master_key_bytes,
    )
    answer = payment_answer(uow.session, accepted.payment)
    if not accepted.replayed:
        uow.because(f"BBPS payment {body.bbps_txn_ref}").commit()
    return answer


@router.get("/payments/{bbps_txn_ref}", response_model=PaymentOut)
def payment_status(bbps_txn_ref: Annotated[str, Path(pattern=TXN_REF)], uow: Biller) -> dict[str, Any]:
    """BBPS's transaction status check: the answer we gave, or 404 `unknown_transaction` if the
    notification never reached us (BBPS then reverses or re-sends it)."""
    return payment_answer(uow.session, get_payment(uow.session, bbps_txn_ref))
