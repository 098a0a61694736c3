"""Background work of the household profile: building a requested data export, and deleting exports
past their expiry. Listed in `platform/plugins.py` so the worker loads it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.customers import profile_service
from citygas.customers.profile_models import DataExport
from citygas.platform.jobs import scheduled
from citygas.platform.outbox import Event, handles
from citygas.platform.tenancy import set_tenant
from citygas.platform.time import utcnow
from citygas.platform.uow import Database


@handles(profile_service.EXPORT_TOPIC, name="customers.profile.build_export")
def build_export(session: Session, event: Event) -> None:
    """Runs inside the event's tenant; commits with the relay's done marker, so it builds once."""
    profile_service.do_build_export(session, uuid.UUID(str(event.payload["export_id"])))


@scheduled("customers.expire_data_exports", every=timedelta(hours=1))
def expire_data_exports(db: Database) -> None:
    with db.system() as uow:
        tenants = set(
            uow.session.execute(
                select(DataExport.tenant_id).where(
                    DataExport.status == "ready", DataExport.expires_at <= utcnow()
                )
            ).scalars()
        )
        for tenant_id in sorted(tenants):
            # Each tenant's rows are changed inside its own wall, so its audit chain records the deletion.
            set_tenant(uow.session, tenant_id)
            profile_service.expire_exports(uow.session)
        uow.because("data export expired").commit()
