"""The staff portals' pages: homes per audience, customers, activity, audit log, API keys."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, or_, select

from citygas.customers.models import Customer
from citygas.customers.service import get_customer
from citygas.identity import service as identity
from citygas.identity.models import ApiKey, StaffUser
from citygas.identity.rules import API_KEY_SCOPES, Permission
from citygas.platform.audit import AuditEntry
from citygas.platform.errors import DomainError
from citygas.platform.tenancy import ChargeArea, GeographicalArea, Tenant
from citygas.platform.uow import UnitOfWork
from citygas.platform.workflow import list_activity
from citygas.web.deps import Requires, current_principal, uow_with, verify_csrf
from citygas.web.render import render

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

P = Permission


def _activity_context(request: Request, uow: UnitOfWork, *, only_overdue: bool = False) -> dict[str, Any]:
    principal = current_principal(request)
    assert principal is not None
    activity = list_activity(
        uow.session,
        roles=principal.roles,
        user_id=principal.id if principal.kind == "staff" else None,
        only_overdue=only_overdue,
    )
    return {
        "activity": activity,
        "overdue_count": sum(1 for a in activity if a.overdue),
        "tenant": uow.session.get(Tenant, principal.tenant_id),
    }


def _count(uow: UnitOfWork, model: type[object]) -> int:
    return int(uow.session.execute(select(func.count()).select_from(model)).scalar_one())


@router.get("/ops/", response_class=HTMLResponse)
def ops_home(request: Request, uow: Annotated[UnitOfWork, Depends(uow_with(P.OPS_PORTAL))]) -> Response:
    stats = [
        ("Customers", _count(uow, Customer)),
        ("Charge areas", _count(uow, ChargeArea)),
        ("Staff", _count(uow, StaffUser)),
    ]
    return render(
        request, "portal/home.html", heading="Back office", stats=stats, **_activity_context(request, uow)
    )


@router.get("/cgd/", response_class=HTMLResponse)
def cgd_home(request: Request, uow: Annotated[UnitOfWork, Depends(uow_with(P.CGD_PORTAL))]) -> Response:
    stats = [
        ("Customers", _count(uow, Customer)),
        ("Geographical areas", _count(uow, GeographicalArea)),
        ("Charge areas", _count(uow, ChargeArea)),
    ]
    return render(
        request, "portal/home.html", heading="CGD portal", stats=stats, **_activity_context(request, uow)
    )


@router.get("/field/", response_class=HTMLResponse)
def field_home(request: Request, uow: Annotated[UnitOfWork, Depends(uow_with(P.FIELD_PORTAL))]) -> Response:
    return render(
        request, "portal/home.html", heading="My field work", stats=[], **_activity_context(request, uow)
    )


@router.get("/agent/", response_class=HTMLResponse)
def agent_home(request: Request, uow: Annotated[UnitOfWork, Depends(uow_with(P.AGENT_PORTAL))]) -> Response:
    from citygas.payments.csc.pages import agent_home_page  # noqa: PLC0415 - the CSC package imports this layer

    return agent_home_page(request, uow)


@router.get("/ops/customers", response_class=HTMLResponse)
def customers_page(
    request: Request,
    uow: Annotated[UnitOfWork, Depends(uow_with(P.CUSTOMER_VIEW))],
    q: str = "",
) -> Response:
    query = select(Customer, ChargeArea).join(ChargeArea, Customer.charge_area_id == ChargeArea.id)
    if q.strip():
        like = f"%{q.strip()}%"
        query = query.where(
            or_(Customer.consumer_number.ilike(like), Customer.name.ilike(like), Customer.phone.like(like))
        )
    rows = uow.session.execute(query.order_by(Customer.consumer_number).limit(100)).all()
    return render(request, "portal/customers.html", rows=rows, q=q)


@router.get("/ops/customers/{consumer_number}", response_class=HTMLResponse)
def customer_page(
    request: Request,
    consumer_number: str,
    uow: Annotated[UnitOfWork, Depends(uow_with(P.CUSTOMER_VIEW))],
) -> Response:
    customer = get_customer(uow.session, consumer_number)
    area = uow.session.get(ChargeArea, customer.charge_area_id)
    entries = (
        uow.session.execute(
            select(AuditEntry)
            .where(AuditEntry.entity_id == str(customer.id))
            .order_by(AuditEntry.seq.desc())
            .limit(50)
        )
        .scalars()
        .all()
    )
    return render(request, "portal/customer.html", customer=customer, area=area, entries=entries)


@router.get("/ops/activity", response_class=HTMLResponse)
def activity_page(
    request: Request,
    uow: Annotated[UnitOfWork, Depends(uow_with(P.ACTIVITY_VIEW))],
    overdue: int = 0,
) -> Response:
    return render(
        request, "portal/activity.html", **_activity_context(request, uow, only_overdue=bool(overdue))
    )


@router.get("/ops/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    uow: Annotated[UnitOfWork, Depends(uow_with(P.AUDIT_VIEW))],
    before: int | None = None,
) -> Response:
    query = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(100)
    if before is not None:
        query = query.where(AuditEntry.seq < before)
    entries = uow.session.execute(query).scalars().all()
    next_before = entries[-1].seq if len(entries) == 100 else None
    return render(request, "portal/audit.html", entries=entries, next_before=next_before)


def _api_keys_page(request: Request, uow: UnitOfWork, status_code: int = 200, **extra: object) -> Response:
    keys = uow.session.execute(select(ApiKey).order_by(ApiKey.created_at.desc())).scalars().all()
    return render(
        request,
        "portal/api_keys.html",
        status_code=status_code,
        keys=keys,
        scopes=sorted(API_KEY_SCOPES),
        **extra,
    )


@router.get("/cgd/api-keys", response_class=HTMLResponse)
def api_keys(request: Request, uow: Annotated[UnitOfWork, Depends(uow_with(P.APIKEY_MANAGE))]) -> Response:
    return _api_keys_page(request, uow)


@router.post("/cgd/api-keys", response_class=HTMLResponse)
def create_api_key(
    request: Request,
    uow: Annotated[UnitOfWork, Depends(uow_with(P.APIKEY_MANAGE))],
    name: Annotated[str, Form(max_length=120)] = "",
    scopes: Annotated[list[str] | None, Form()] = None,
) -> Response:
    scopes = scopes or []
    principal = current_principal(request)
    assert principal is not None
    try:
        _, secret = identity.do_create_api_key(
            uow.session, name=name, scopes=scopes, created_by=principal.label
        )
    except DomainError as exc:
        uow.rollback()
        return _api_keys_page(request, uow, status_code=exc.status, error=exc.detail)
    uow.because(f"API key created for {name}").commit()
    return _api_keys_page(request, uow, new_key=secret)


@router.post("/cgd/api-keys/{key_id}/revoke")
def revoke_api_key(
    key_id: uuid.UUID,
    uow: Annotated[UnitOfWork, Depends(uow_with(P.APIKEY_MANAGE))],
    reason: Annotated[str, Form(max_length=200)] = "revoked from the CGD portal",
) -> Response:
    identity.do_revoke_api_key(uow.session, key_id)
    uow.because(reason).commit()
    return RedirectResponse("/cgd/api-keys", status_code=303)


__all__ = ["Requires", "router"]
