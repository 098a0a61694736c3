"""Scheduled housekeeping: expired sessions and OTPs, old relayed outbox rows, newly overdue work."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from citygas.identity.models import OtpChallenge, WebSession
from citygas.platform.jobs import scheduled
from citygas.platform.outbox import OutboxEvent, OutboxHandled, OutboxStatus, emit
from citygas.platform.tenancy import set_tenant
from citygas.platform.time import utcnow
from citygas.platform.uow import Database
from citygas.platform.workflow import WorkItem

OUTBOX_RETENTION = timedelta(days=7)


@scheduled("housekeeping.expired_logins", every=timedelta(minutes=15))
def purge_expired_logins(db: Database) -> None:
    now = utcnow()
    with db.system() as uow:
        uow.session.execute(delete(WebSession).where(WebSession.expires_at < now - timedelta(days=1)))
        uow.session.execute(delete(OtpChallenge).where(OtpChallenge.expires_at < now - timedelta(days=1)))
        uow.commit()


@scheduled("housekeeping.relayed_outbox", every=timedelta(hours=1))
def purge_relayed_outbox(db: Database) -> None:
    cutoff = utcnow() - OUTBOX_RETENTION
    with db.system() as uow:
        old = select(OutboxEvent.id).where(
            OutboxEvent.status == OutboxStatus.DONE, OutboxEvent.done_at < cutoff
        )
        uow.session.execute(delete(OutboxHandled).where(OutboxHandled.event_id.in_(old)))
        uow.session.execute(
            delete(OutboxEvent).where(OutboxEvent.status == OutboxStatus.DONE, OutboxEvent.done_at < cutoff)
        )
        uow.commit()


@scheduled("workflow.sla_watch", every=timedelta(minutes=1))
def announce_overdue(db: Database) -> None:
    """Emit one `workflow.overdue` event per work item the first time it passes its due time, so
    notifications and escalations can follow without polling."""
    now = utcnow()
    with db.system() as uow:
        items = (
            uow.session.execute(
                select(WorkItem)
                .where(
                    WorkItem.closed.is_(False), WorkItem.due_at < now, WorkItem.overdue_announced.is_(False)
                )
                .limit(1000)
            )
            .scalars()
            .all()
        )
        for item in items:
            set_tenant(uow.session, item.tenant_id)
            emit(
                uow.session,
                "workflow.overdue",
                {
                    "workflow": item.workflow,
                    "entity_id": str(item.entity_id),
                    "state": item.state,
                    "due_at": item.due_at.isoformat() if item.due_at else None,
                },
                tenant_id=item.tenant_id,
            )
            item.overdue_announced = True
            uow.session.flush()
        uow.commit()
