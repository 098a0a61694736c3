"""The household's profile page in the customer app (`/app/profile`): connections, notification
preferences, consents, language and 'download my data'."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from citygas.customers import profile_service
from citygas.customers.households import connections_of_phone
from citygas.customers.models import Customer
from citygas.identity.rules import Permission
from citygas.meters.models import Meter
from citygas.platform.errors import DomainError
from citygas.platform.uow import UnitOfWork
from citygas.web.deps import current_principal, uow_with, verify_csrf
from citygas.web.render import render

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

HouseholdUow = Annotated[UnitOfWork, Depends(uow_with(Permission.CUSTOMER_SELF))]
Channels = Annotated[list[str] | None, Form(max_length=16)]
# Meters that no longer measure gas for the household are history, not 'my meter'.
GONE_METER_STATES = frozenset({"replaced", "retired"})


def _me(request: Request, uow: UnitOfWork) -> Customer:
    principal = current_principal(request)
    assert principal is not None  # the route's permission dependency has checked it
    me = uow.session.get(Customer, principal.id)
    assert me is not None
    return me


def _profile(request: Request, uow: UnitOfWork, status_code: int = 200, **extra: Any) -> Response:
    me = _me(request, uow)
    connections = connections_of_phone(uow.session, me.phone)
    meters: dict[uuid.UUID, list[str]] = {}
    for meter in uow.session.execute(
        select(Meter).where(Meter.customer_id.in_([c.id for c in connections])).order_by(Meter.serial)
    ).scalars():
        if meter.customer_id is not None and meter.state not in GONE_METER_STATES:
            meters.setdefault(meter.customer_id, []).append(meter.serial)
    return render(
        request,
        "app/profile.html",
        status_code=status_code,
        tab="",
        me=me,
        connections=connections,
        meters=meters,
        preferences=profile_service.preferences(uow.session, me.phone),
        channels=profile_service.CHANNELS,
        consents=profile_service.consents(uow.session, me.phone),
        exports=profile_service.exports(uow.session, me.phone),
        has_email=any(c.email for c in connections),
        **extra,
    )


@router.get("/app/profile", response_class=HTMLResponse)
def profile(request: Request, uow: HouseholdUow) -> Response:
    return _profile(request, uow)


@router.post("/app/profile/preferences")
def save_preferences(
    request: Request,
    uow: HouseholdUow,
    low_credit: Channels = None,
    tokens_payments: Channels = None,
    service_updates: Channels = None,
    outages_safety: Channels = None,
) -> Response:
    me = _me(request, uow)
    # The form shows every topic, and an unticked box is not sent: a topic with nothing sent has no channel.
    chosen = {
        "low_credit": low_credit or [],
        "tokens_payments": tokens_payments or [],
        "service_updates": service_updates or [],
        "outages_safety": outages_safety or [],
    }
    try:
        changed = profile_service.do_set_preferences(uow.session, me.phone, chosen)
    except DomainError as exc:
        uow.rollback()
        return _profile(request, uow, status_code=exc.status, error=exc.detail)
    if changed:
        uow.because(f"household changed notification preferences: {', '.join(changed)}").commit()
    return RedirectResponse("/app/profile#notifications", status_code=303)


@router.post("/app/profile/consents")
def set_consent(
    request: Request,
    uow: HouseholdUow,
    purpose: Annotated[str, Form(max_length=32)] = "",
    decision: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    me = _me(request, uow)
    try:
        profile_service.do_set_consent(uow.session, me.phone, purpose, decision)
    except DomainError as exc:
        uow.rollback()
        return _profile(request, uow, status_code=exc.status, error=exc.detail)
    uow.because(f"household {'gave' if decision == 'give' else 'withdrew'} consent: {purpose}").commit()
    return RedirectResponse("/app/profile#consents", status_code=303)


@router.post("/app/profile/export")
def request_export(request: Request, uow: HouseholdUow) -> Response:
    me = _me(request, uow)
    try:
        profile_service.do_request_export(uow.session, customer=me)
    except DomainError as exc:
        uow.rollback()
        return _profile(request, uow, status_code=exc.status, error=exc.detail)
    uow.because("household asked for a copy of its data").commit()
    return RedirectResponse("/app/profile#my-data", status_code=303)


@router.get("/app/profile/export/{export_id}")
def download_export(request: Request, export_id: uuid.UUID, uow: HouseholdUow) -> Response:
    me = _me(request, uow)
    export = profile_service.downloadable_export(uow.session, export_id, me.phone)
    assert export.content is not None  # downloadable_export checked it
    day = export.ready_at.date().isoformat() if export.ready_at else "export"
    return Response(
        export.content,
        media_type="application/json; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="citygas-my-data-{day}.json"',
            "Cache-Control": "no-store",  # the household's whole record must not sit in shared caches
        },
    )
