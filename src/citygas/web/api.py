"""Platform API: who am I, areas, the activity list and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select

from citygas.identity.principal import Principal
from citygas.identity.rules import Permission
from citygas.platform.audit import AuditEntry
from citygas.platform.tenancy import ChargeArea, GeographicalArea, Tenant
from citygas.platform.uow import UnitOfWork
from citygas.platform.workflow import list_activity
from citygas.web.deps import Requires, uow_with

router = APIRouter(prefix="/api/v1", tags=["platform"])
P = Permission


class Me(BaseModel):
    kind: str
    label: str
    tenant: str
    roles: list[str]
    permissions: list[str]


class ChargeAreaOut(BaseModel):
    code: str
    name: str
    pincode: str


class AreaOut(BaseModel):
    code: str
    name: str
    state: str
    charge_areas: list[ChargeAreaOut]


class ActivityOut(BaseModel):
    workflow: str
    entity_id: str
    title: str
    state: str
    due_at: datetime | None
    overdue: bool


class AuditOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    request_id: str | None
    hash: str


@router.get("/me", response_model=Me)
def me(
    principal: Annotated[Principal, Depends(Requires(None))],
    uow: Annotated[UnitOfWork, Depends(uow_with(None))],
) -> Me:
    tenant = uow.session.get(Tenant, principal.tenant_id)
    return Me(
        kind=principal.kind,
        label=principal.label,
        tenant=tenant.name if tenant else "",
        roles=sorted(principal.roles),
        permissions=sorted(principal.permissions),
    )


@router.get("/areas", response_model=list[AreaOut])
def areas(uow: Annotated[UnitOfWork, Depends(uow_with(P.AREA_VIEW))]) -> list[AreaOut]:
    gas = uow.session.execute(select(GeographicalArea).order_by(GeographicalArea.code)).scalars().all()
    cas = uow.session.execute(select(ChargeArea).order_by(ChargeArea.code)).scalars().all()
    return [
        AreaOut(
            code=ga.code,
            name=ga.name,
            state=ga.state,
            charge_areas=[
                ChargeAreaOut(code=c.code, name=c.name, pincode=c.pincode) for c in cas if c.ga_id == ga.id
            ],
        )
        for ga in gas
    ]


@router.get("/activity", response_model=list[ActivityOut])
def activity(
    uow: Annotated[UnitOfWork, Depends(uow_with(P.ACTIVITY_VIEW))],
    principal: Annotated[Principal, Depends(Requires(P.ACTIVITY_VIEW))],
    overdue: bool = False,
) -> list[ActivityOut]:
    items = list_activity(uow.session, roles=principal.roles, user_id=principal.id, only_overdue=overdue)
    return [
        ActivityOut(
            workflow=a.item.workflow,
            entity_id=str(a.item.entity_id),
            title=a.item.title,
            state=a.item.state,
            due_at=a.item.due_at,
            overdue=a.overdue,
        )
        for a in items
    ]


@router.get("/audit", response_model=list[AuditOut])
def audit_log(
    uow: Annotated[UnitOfWork, Depends(uow_with(P.AUDIT_VIEW))],
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    rows = (
        uow.session.execute(
            select(AuditEntry).where(AuditEntry.seq > after_seq).order_by(AuditEntry.seq).limit(limit)
        )
        .scalars()
        .all()
    )
    return [
        AuditOut(
            seq=e.seq,
            at=e.at,
            actor=e.actor_label,
            action=e.action,
            entity_type=e.entity_type,
            entity_id=e.entity_id,
            before=e.before,
            after=e.after,
            reason=e.reason,
            request_id=e.request_id,
            hash=e.hash,
        )
        for e in rows
    ]
