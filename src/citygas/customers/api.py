"""Customer look-ups for vending channels and the CGD's systems (a BBPS bill fetch uses these)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from citygas.customers.schemas import CustomerOut, CustomerPage
from citygas.customers.service import get_customer, list_customers, mask_phone
from citygas.identity.rules import Permission
from citygas.platform.tenancy import ChargeArea
from citygas.platform.uow import UnitOfWork
from citygas.web.deps import uow_with

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])
ReadCustomers = Annotated[UnitOfWork, Depends(uow_with(Permission.CUSTOMER_VIEW))]


def _out(uow: UnitOfWork, customer: object) -> CustomerOut:
    from citygas.customers.models import Customer  # noqa: PLC0415

    assert isinstance(customer, Customer)
    area = uow.session.get(ChargeArea, customer.charge_area_id)
    return CustomerOut(
        consumer_number=customer.consumer_number,
        name=customer.name,
        status=customer.status,
        charge_area_code=area.code if area else "",
        phone_masked=mask_phone(customer.phone),
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


@router.get("/{consumer_number}", response_model=CustomerOut)
def customer(consumer_number: str, uow: ReadCustomers) -> CustomerOut:
    return _out(uow, get_customer(uow.session, consumer_number))
