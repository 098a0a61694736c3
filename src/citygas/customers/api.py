"""Customer look-ups for vending channels and the CGD's systems (a BBPS bill fetch uses these)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from citygas.customers.models import Customer
from citygas.customers.schemas import CustomerDetail, CustomerOut, CustomerPage, MeterSummary, VendLimitsOut
from citygas.customers.service import get_customer, list_customers, mask_phone
from citygas.identity.rules import Permission
from citygas.meters.models import Meter, MeterModel
from citygas.platform.tenancy import ChargeArea
from citygas.platform.uow import UnitOfWork
from citygas.vending.rules import DEFAULT_LIMITS
from citygas.web.deps import uow_with

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])
LIVE_METER_STATES = ("installed", "commissioned", "active", "suspended", "faulty")
ReadCustomers = Annotated[UnitOfWork, Depends(uow_with(Permission.CUSTOMER_VIEW))]


def _detail(uow: UnitOfWork, customer: Customer) -> CustomerDetail:
    area = uow.session.get(ChargeArea, customer.charge_area_id)
    row = uow.session.execute(
        select(Meter, MeterModel)
        .join(MeterModel, Meter.model_id == MeterModel.id)
        .where(Meter.customer_id == customer.id, Meter.state.in_(LIVE_METER_STATES))
    ).first()
    meter = None
    reason: str | None = "no meter installed yet"
    if row is not None:
        m, model = row
        meter = MeterSummary(
            serial=m.serial, sts_meter_number=m.sts_meter_number, state=m.state, mode=model.mode
        )
        reason = None if m.state == "active" else f"meter {m.serial} is {m.state}"
    limits = DEFAULT_LIMITS
    return CustomerDetail(
        consumer_number=customer.consumer_number,
        name=customer.name,
        status=customer.status,
        charge_area_code=area.code if area else "",
        phone_masked=mask_phone(customer.phone),
        meter=meter,
        vend_limits=VendLimitsOut(
            minimum_paise=limits.minimum_paise,
            maximum_paise=limits.maximum_paise,
            daily_paise=limits.daily_paise,
            daily_count=limits.daily_count,
            can_vend=reason is None,
            reason=reason,
        ),
    )


@router.get("", response_model=CustomerPage)
def customers(
    uow: ReadCustomers,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=24, description="next_cursor of the previous page")
    ] = None,
) -> CustomerPage:
    rows = list_customers(uow.session, after=cursor, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    areas = {a.id: a.code for a in uow.session.execute(select(ChargeArea)).scalars()}
    items = [
        CustomerOut(
            consumer_number=c.consumer_number,
            name=c.name,
            status=c.status,
            charge_area_code=areas.get(c.charge_area_id, ""),
            phone_masked=mask_phone(c.phone),
        )
        for c in rows
    ]
    return CustomerPage(items=items, next_cursor=rows[-1].consumer_number if more and rows else None)


@router.get("/{consumer_number}", response_model=CustomerDetail)
def customer(consumer_number: str, uow: ReadCustomers) -> CustomerDetail:
    """Name, status, meter and what a vending channel may take now."""
    return _detail(uow, get_customer(uow.session, consumer_number))
