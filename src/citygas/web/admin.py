"""The operator's admin pages: tenants (CGDs), their areas and their users.

These are the only pages that cross tenants, and only for the operator admin (`tenant.manage`).
Each change still runs in a unit of work bound to the tenant being changed, so the rows it writes,
and their audit entries, land inside that tenant's wall.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from citygas.identity import service as identity
from citygas.identity.models import StaffUser
from citygas.identity.principal import Principal
from citygas.identity.rules import ROLE_LABELS, Permission, Role
from citygas.platform.db import flush_unique
from citygas.platform.errors import DomainError, NotFound, ValidationFailed
from citygas.platform.tenancy import ChargeArea, GeographicalArea, Tenant
from citygas.platform.time import utcnow
from citygas.platform.uow import Database
from citygas.web.deps import DbDep, Requires, verify_csrf
from citygas.web.render import render

router = APIRouter(prefix="/ops/admin", dependencies=[Depends(verify_csrf)], include_in_schema=False)
Operator = Annotated[Principal, Depends(Requires(Permission.TENANT_MANAGE))]

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,30}$")
CODE = re.compile(r"^[A-Z]{2,6}$")


def do_create_tenant(
    db: Database, principal: Principal, *, name: str, slug: str, code: str, state: str, helpline: str
) -> Tenant:
    slug, code = slug.strip().lower(), code.strip().upper()
    if not name.strip():
        raise ValidationFailed("Enter the CGD's name")
    if not SLUG.match(slug):
        raise ValidationFailed("The short name uses 2–31 lower-case letters, digits and dashes")
    if not CODE.match(code):
        raise ValidationFailed("The number prefix is 2–6 capital letters")
    with db.unit_of_work(tenant="system", actor=principal.actor) as uow:
        tenant = Tenant(
            name=name.strip(),
            slug=slug,
            code=code,
            kind="cgd",
            state=state.strip(),
            helpline=helpline.strip(),
        )
        uow.session.add(tenant)
        flush_unique(uow.session, ValidationFailed("Another tenant already uses that short name or prefix"))
        uow.because("tenant created by the operator").commit()
        return tenant


@router.get("/tenants", response_class=HTMLResponse)
def tenants(request: Request, db: DbDep, _principal: Operator) -> Response:
    return _tenants_page(request, db)


def _tenants_page(request: Request, db: Database, status_code: int = 200, **extra: object) -> Response:
    with db.system(read_only=True) as uow:
        rows = uow.session.execute(select(Tenant).order_by(Tenant.kind.desc(), Tenant.name)).scalars().all()
    form = extra.pop("form", {"name": "", "slug": "", "code": "", "state": "", "helpline": ""})
    return render(request, "admin/tenants.html", status_code=status_code, tenants=rows, form=form, **extra)


@router.post("/tenants", response_class=HTMLResponse)
def create_tenant(
    request: Request,
    db: DbDep,
    principal: Operator,
    name: Annotated[str, Form(max_length=200)],
    slug: Annotated[str, Form(max_length=32)],
    code: Annotated[str, Form(max_length=8)],
    state: Annotated[str, Form(max_length=64)] = "",
    helpline: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    try:
        tenant = do_create_tenant(
            db, principal, name=name, slug=slug, code=code, state=state, helpline=helpline
        )
    except DomainError as exc:
        form = {"name": name, "slug": slug, "code": code, "state": state, "helpline": helpline}
        return _tenants_page(request, db, status_code=exc.status, error=exc.detail, form=form)
    return RedirectResponse(f"/ops/admin/tenants/{tenant.id}", status_code=303)


def _tenant_or_404(db: Database, tenant_id: uuid.UUID) -> Tenant:
    with db.system(read_only=True) as uow:
        tenant = uow.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant")
    return tenant


def _tenant_page(
    request: Request, db: Database, tenant_id: uuid.UUID, status_code: int = 200, **extra: object
) -> Response:
    tenant = _tenant_or_404(db, tenant_id)
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        gas = uow.session.execute(select(GeographicalArea).order_by(GeographicalArea.code)).scalars().all()
        cas = uow.session.execute(select(ChargeArea).order_by(ChargeArea.code)).scalars().all()
        users = uow.session.execute(select(StaffUser).order_by(StaffUser.username)).scalars().all()
        areas = [(ga, [ca for ca in cas if ca.ga_id == ga.id]) for ga in gas]
        return render(
            request,
            "admin/tenant.html",
            status_code=status_code,
            tenant=tenant,
            areas=areas,
            users=users,
            roles=[
                (r.value, label)
                for r, label in ROLE_LABELS.items()
                if tenant.kind == "operator" or r is not Role.OPERATOR_ADMIN
            ],
            now=utcnow(),
            **extra,
        )


@router.get("/tenants/{tenant_id}", response_class=HTMLResponse)
def tenant_detail(request: Request, tenant_id: uuid.UUID, db: DbDep, _principal: Operator) -> Response:
    return _tenant_page(request, db, tenant_id)


@router.post("/tenants/{tenant_id}/areas", response_class=HTMLResponse)
def add_ga(
    request: Request,
    tenant_id: uuid.UUID,
    db: DbDep,
    principal: Operator,
    code: Annotated[str, Form(max_length=16)],
    name: Annotated[str, Form(max_length=200)],
    state: Annotated[str, Form(max_length=64)],
) -> Response:
    tenant = _tenant_or_404(db, tenant_id)
    try:
        with db.unit_of_work(tenant=tenant.id, actor=principal.actor) as uow:
            if not code.strip() or not name.strip():
                raise ValidationFailed("A GA needs a code and a name")
            uow.session.add(
                GeographicalArea(code=code.strip().upper(), name=name.strip(), state=state.strip())
            )
            flush_unique(uow.session, ValidationFailed(f"GA {code.strip().upper()} exists already"))
            uow.because("GA added by the operator").commit()
    except DomainError as exc:
        return _tenant_page(request, db, tenant_id, status_code=exc.status, error=exc.detail)
    return RedirectResponse(f"/ops/admin/tenants/{tenant_id}", status_code=303)


@router.post("/tenants/{tenant_id}/charge-areas", response_class=HTMLResponse)
def add_charge_area(
    request: Request,
    tenant_id: uuid.UUID,
    db: DbDep,
    principal: Operator,
    ga_code: Annotated[str, Form(max_length=16)],
    code: Annotated[str, Form(max_length=16)],
    name: Annotated[str, Form(max_length=200)],
    pincode: Annotated[str, Form(max_length=6)] = "",
) -> Response:
    tenant = _tenant_or_404(db, tenant_id)
    try:
        with db.unit_of_work(tenant=tenant.id, actor=principal.actor) as uow:
            ga = uow.session.execute(
                select(GeographicalArea).where(GeographicalArea.code == ga_code)
            ).scalar_one_or_none()
            if ga is None:
                raise ValidationFailed("Choose a GA of this tenant")
            if not code.strip() or not name.strip():
                raise ValidationFailed("A charge area needs a code and a name")
            if pincode and not (pincode.isdigit() and len(pincode) == 6):
                raise ValidationFailed("A PIN code is 6 digits")
            uow.session.add(
                ChargeArea(ga_id=ga.id, code=code.strip().upper(), name=name.strip(), pincode=pincode)
            )
            flush_unique(uow.session, ValidationFailed(f"Charge area {code.strip().upper()} exists already"))
            uow.because("charge area added by the operator").commit()
    except DomainError as exc:
        return _tenant_page(request, db, tenant_id, status_code=exc.status, error=exc.detail)
    return RedirectResponse(f"/ops/admin/tenants/{tenant_id}", status_code=303)


@router.post("/tenants/{tenant_id}/users", response_class=HTMLResponse)
def add_user(
    request: Request,
    tenant_id: uuid.UUID,
    db: DbDep,
    principal: Operator,
    username: Annotated[str, Form(max_length=64)],
    full_name: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=256)],
    roles: Annotated[list[str] | None, Form()] = None,
) -> Response:
    tenant = _tenant_or_404(db, tenant_id)
    try:
        with db.unit_of_work(tenant=tenant.id, actor=principal.actor) as uow:
            identity.do_create_staff_user(
                uow.session, username=username, full_name=full_name, password=password, roles=roles or []
            )
            uow.because("user added by the operator").commit()
    except DomainError as exc:
        return _tenant_page(request, db, tenant_id, status_code=exc.status, error=exc.detail)
    return RedirectResponse(f"/ops/admin/tenants/{tenant_id}", status_code=303)


@router.post("/users/{user_id}/{action}")
def change_user(
    user_id: uuid.UUID,
    action: str,
    db: DbDep,
    principal: Operator,
    tenant_id: Annotated[uuid.UUID, Form()],
) -> Response:
    if action not in {"disable", "enable", "unlock"}:
        raise NotFound("no such action")
    tenant = _tenant_or_404(db, tenant_id)
    with db.unit_of_work(tenant=tenant.id, actor=principal.actor) as uow:
        user = uow.session.get(StaffUser, user_id)
        if user is None:
            raise NotFound("no such user in this tenant")
        if action == "disable":
            user.active = False
        elif action == "enable":
            user.active = True
        else:
            user.failed_logins = 0
            user.locked_until = None
        uow.because(f"user {action}d by the operator").commit()
    return RedirectResponse(f"/ops/admin/tenants/{tenant_id}", status_code=303)
