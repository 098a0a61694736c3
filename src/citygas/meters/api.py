"""Meter look-ups for the CGD's systems and vending channels."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.identity.rules import Permission
from citygas.meters.models import Meter, MeterModel
from citygas.meters.schemas import MeterOut, MeterPage, TransitionOut
from citygas.meters.service import get_meter, list_meters
from citygas.platform.uow import UnitOfWork
from citygas.platform.workflow import history
from citygas.web.deps import uow_with

router = APIRouter(prefix="/api/v1/meters", tags=["meters"])
ReadMeters = Annotated[UnitOfWork, Depends(uow_with(Permission.METER_VIEW))]


def meter_out(session: Session, meter: Meter) -> MeterOut:
    model = session.get(MeterModel, meter.model_id)
    customer = session.get(Customer, meter.customer_id) if meter.customer_id else None
    return MeterOut(
        serial=meter.serial,
        sts_meter_number=meter.sts_meter_number,
        model=model.code if model else "",
        mode=model.mode if model else "",
        state=meter.state,
        consumer_number=customer.consumer_number if customer else None,
        sgc=meter.sgc,
        krn=meter.krn,
        ti=meter.ti,
        base_date=meter.base_date,
        ken=meter.ken,
        last_tid=meter.last_tid,
        key_change_pending=meter.key_change_pending,
        created_at=meter.created_at,
    )


@router.get("", response_model=MeterPage)
def meters(
    uow: ReadMeters,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
) -> MeterPage:
    rows = list_meters(uow.session, after=cursor, limit=limit + 1, state=state)
    more = len(rows) > limit
    rows = rows[:limit]
    # One query for the models and customers of the page rather than one per meter.
    models = {m.id: m for m in uow.session.execute(select(MeterModel)).scalars()}
    customer_ids = [m.customer_id for m in rows if m.customer_id]
    customers = (
        {
            c.id: c.consumer_number
            for c in uow.session.execute(select(Customer).where(Customer.id.in_(customer_ids))).scalars()
        }
        if customer_ids
        else {}
    )
    items = [
        MeterOut(
            serial=m.serial,
            sts_meter_number=m.sts_meter_number,
            model=models[m.model_id].code,
            mode=models[m.model_id].mode,
            state=m.state,
            consumer_number=customers.get(m.customer_id) if m.customer_id else None,
            sgc=m.sgc,
            krn=m.krn,
            ti=m.ti,
            base_date=m.base_date,
            ken=m.ken,
            last_tid=m.last_tid,
            key_change_pending=m.key_change_pending,
            created_at=m.created_at,
        )
        for m in rows
    ]
    return MeterPage(items=items, next_cursor=rows[-1].serial if more and rows else None)


@router.get("/{serial}", response_model=MeterOut)
def meter(serial: str, uow: ReadMeters) -> MeterOut:
    return meter_out(uow.session, get_meter(uow.session, serial))


@router.get("/{serial}/history", response_model=list[TransitionOut])
def meter_history(serial: str, uow: ReadMeters) -> list[TransitionOut]:
    m = get_meter(uow.session, serial)
    return [
        TransitionOut(
            action=h.action,
            from_state=h.from_state,
            to_state=h.to_state,
            actor=h.actor_label,
            reason=h.reason,
            at=h.at,
        )
        for h in history(uow.session, "meter", m.id)
    ]
