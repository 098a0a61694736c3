"""Back-office pages for the meter registry: the list, one meter with its history, lifecycle actions."""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from citygas.customers.models import Customer
from citygas.identity.principal import Principal
from citygas.identity.rules import Permission
from citygas.meters.lifecycle import METER_LIFECYCLE
from citygas.meters.models import Meter, MeterModel
from citygas.meters.replacement import LIVE, FinalReading, do_replace_meter, read_signed_status
from citygas.meters.service import do_meter_transition, get_meter
from citygas.platform.errors import DomainError, ValidationFailed
from citygas.platform.money import AmountError, parse_rupees
from citygas.platform.uow import UnitOfWork
from citygas.platform.workflow import history
from citygas.sts import group_token
from citygas.web.deps import Requires, current_principal, uow_with, verify_csrf
from citygas.web.render import render

router = APIRouter(prefix="/ops/meters", dependencies=[Depends(verify_csrf)], include_in_schema=False)
ReadMeters = Annotated[UnitOfWork, Depends(uow_with(Permission.METER_VIEW))]


@router.get("", response_class=HTMLResponse)
def meters_page(request: Request, uow: ReadMeters, q: str = "", state: str = "") -> Response:
    query = (
        select(Meter, MeterModel, Customer)
        .join(MeterModel, Meter.model_id == MeterModel.id)
        .outerjoin(Customer, Meter.customer_id == Customer.id)
    )
    if q.strip():
        like = f"%{q.strip().upper()}%"
        query = query.where(
            (Meter.serial.like(like))
            | (Meter.sts_meter_number.like(f"%{q.strip()}%"))
            | (Customer.consumer_number.like(like))
        )
    if state:
        query = query.where(Meter.state == state)
    rows = uow.session.execute(query.order_by(Meter.serial).limit(200)).all()
    counts = dict(uow.session.execute(select(Meter.state, func.count()).group_by(Meter.state)).all())
    states = [(s.name, s.label, counts.get(s.name, 0)) for s in METER_LIFECYCLE.states]
    return render(request, "meters/list.html", rows=rows, q=q, state=state, states=states)


def _detail(
    request: Request, uow: UnitOfWork, serial: str, status_code: int = 200, **extra: object
) -> Response:
    meter = get_meter(uow.session, serial)
    model = uow.session.get(MeterModel, meter.model_id)
    customer = uow.session.get(Customer, meter.customer_id) if meter.customer_id else None
    principal = current_principal(request)
    actions = [
        t
        for t in METER_LIFECYCLE.available(meter.state)
        if t.name != "replace"
        and principal is not None
        and (t.permission is None or principal.can(t.permission))
    ]
    can_replace = meter.state in LIVE and principal is not None and principal.can(Permission.METER_INSTALL)
    spares = (
        uow.session.execute(
            select(Meter.serial)
            .where(Meter.state == "allocated", Meter.model_id == meter.model_id)
            .order_by(Meter.serial)
            .limit(50)
        )
        .scalars()
        .all()
        if can_replace
        else []
    )
    return render(
        request,
        "meters/detail.html",
        status_code=status_code,
        meter=meter,
        model=model,
        customer=customer,
        history=history(uow.session, "meter", meter.id),
        actions=actions,
        state_label=METER_LIFECYCLE.state(meter.state).label,
        can_replace=can_replace,
        spares=spares,
        **extra,
    )


@router.get("/{serial}", response_class=HTMLResponse)
def meter_page(request: Request, serial: str, uow: ReadMeters) -> Response:
    return _detail(request, uow, serial)


@router.post("/{serial}/replace", response_class=HTMLResponse)
def replace_meter(
    request: Request,
    serial: str,
    uow: Annotated[UnitOfWork, Depends(uow_with(Permission.METER_INSTALL))],
    principal: Annotated[Principal, Depends(Requires(Permission.METER_INSTALL))],
    new_serial: Annotated[str, Form(max_length=32)],
    reason: Annotated[str, Form(max_length=500)] = "",
    signed_reading: Annotated[str, Form(max_length=8000)] = "",
    final_credit: Annotated[str, Form(max_length=20)] = "",
    owed: Annotated[str, Form(max_length=20)] = "0",
) -> Response:
    """The old meter's final credit comes from its signed reading (the field app uploads it), or by hand
    with a supervisor's permission; the credit moves to the new meter as a token."""
    old = get_meter(uow.session, serial)
    master_key = request.app.state.settings.master_key_bytes
    try:
        if signed_reading.strip():
            try:
                frame = base64.b64decode(signed_reading.strip(), validate=True)
            except binascii.Error as exc:
                raise ValidationFailed("the signed reading is not base64 as the field app gives it") from exc
            reading = read_signed_status(frame, master_key=master_key, meter=old)
        elif final_credit.strip():
            reading = FinalReading(
                _base_units(uow, old, final_credit), _base_units(uow, old, owed or "0"), "entered by hand"
            )
        else:
            raise ValidationFailed("Upload the old meter's signed reading, or enter its final credit by hand")
        done = do_replace_meter(
            uow.session,
            old=old,
            new_serial=new_serial,
            reason=reason,
            permissions=principal.permissions,
            master_key=master_key,
            reading=reading,
        )
    except DomainError as exc:
        uow.rollback()
        return _detail(request, uow, serial, status_code=exc.status, error=exc.detail)
    uow.because(reason).commit()
    return render(
        request,
        "meters/replaced.html",
        done=done,
        grouped=group_token(done.token) if done.token else None,
    )


def _base_units(uow: UnitOfWork, meter: Meter, text: str) -> int:
    model = uow.session.get(MeterModel, meter.model_id)
    assert model is not None
    if model.mode == "currency":
        try:
            return parse_rupees(text)
        except AmountError as exc:
            raise ValidationFailed(str(exc)) from exc
    try:
        return round(Decimal(text.strip()) * 1000)
    except InvalidOperation as exc:
        raise ValidationFailed(f"'{text}' is not an amount of SCM") from exc


@router.post("/{serial}/transition", response_class=HTMLResponse)
def meter_transition(
    request: Request,
    serial: str,
    uow: Annotated[UnitOfWork, Depends(uow_with(Permission.METER_VIEW))],
    principal: Annotated[Principal, Depends(Requires(Permission.METER_VIEW))],
    action: Annotated[str, Form(max_length=40)],
    reason: Annotated[str, Form(max_length=500)] = "",
    consumer_number: Annotated[str, Form(max_length=24)] = "",
) -> Response:
    meter = get_meter(uow.session, serial)
    try:
        do_meter_transition(
            uow.session,
            meter,
            action,
            permissions=principal.permissions,
            reason=reason.strip() or None,
            customer_number=consumer_number or None,
        )
    except DomainError as exc:
        uow.rollback()
        return _detail(request, uow, serial, status_code=exc.status, error=exc.detail)
    uow.because(reason.strip() or None).commit()
    return RedirectResponse(f"/ops/meters/{meter.serial}", status_code=303)
