"""Background work of care: resolved tickets nobody reopened close by themselves after the reopen window.
Listed in `platform/plugins.py` so the worker loads it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from citygas.care import rules
from citygas.care.models import Ticket
from citygas.care.service import do_ticket_action
from citygas.platform.jobs import scheduled
from citygas.platform.tenancy import set_tenant
from citygas.platform.time import utcnow
from citygas.platform.uow import Database

AUTO_CLOSE_REASON = "closed automatically: not reopened within 7 days of being resolved"


def close_stale_resolved(db: Database, *, limit: int = 500) -> int:
    """Close resolved tickets past the reopen window; returns how many were closed."""
    cutoff = utcnow() - rules.REOPEN_WINDOW
    with db.system() as uow:
        stale = (
            uow.session.execute(
                select(Ticket)
                .where(Ticket.state == rules.State.RESOLVED, Ticket.resolved_at < cutoff)
                .order_by(Ticket.resolved_at)
                .limit(limit)
            )
            .scalars()
            .all()
        )
        for ticket in stale:
            # Inside the ticket's own tenant: its history, work item and events stay behind its wall.
            set_tenant(uow.session, ticket.tenant_id)
            do_ticket_action(
                uow.session,
                ticket,
                "close",
                permissions=frozenset({rules.TICKET_MANAGE}),
                reason=AUTO_CLOSE_REASON,
            )
        uow.because(AUTO_CLOSE_REASON).commit()
        return len(stale)


@scheduled("care.close_stale_resolved", every=timedelta(hours=1))
def close_stale_resolved_job(db: Database) -> None:
    close_stale_resolved(db)
