"""Workflows bound to rows. Every transition writes a history row (actor, from, to, reason, time),
which is at once the audit trail, the customer's activity list and the SLA clock. The `work_item`
row is the current position of each process, so "what is open for this role or person, and what is
overdue" is one indexed query."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import ColumnElement, ForeignKey, Index, String, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from citygas.platform.auditable import Audited
from citygas.platform.context import actor_of
from citygas.platform.db import Base, IdMixin
from citygas.platform.errors import PermissionDenied, ValidationFailed
from citygas.platform.ids import uuid7
from citygas.platform.outbox import emit
from citygas.platform.tenancy import TenantScoped
from citygas.platform.time import utcnow
from citygas.platform.workflow_rules import WorkflowDefinition, WorkflowError


class WorkflowTransition(IdMixin, TenantScoped, Base):
    """Append-only history of every transition of every process."""

    __tablename__ = "workflow_transition"
    __table_args__ = (Index("ix_workflow_transition_entity", "tenant_id", "workflow", "entity_id", "at"),)

    workflow: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[uuid.UUID]
    action: Mapped[str] = mapped_column(String(40))
    from_state: Mapped[str | None] = mapped_column(String(40))
    to_state: Mapped[str] = mapped_column(String(40))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None]
    actor_label: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime]
    due_at: Mapped[datetime | None]


class WorkItem(IdMixin, TenantScoped, Audited, Base):
    """The current position of one process instance, for the activity lists."""

    __tablename__ = "work_item"
    __table_args__ = (
        Index("uq_work_item_entity", "tenant_id", "workflow", "entity_id", unique=True),
        Index("ix_work_item_queue", "tenant_id", "closed", "queue_role", "due_at"),
    )

    workflow: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[uuid.UUID]
    title: Mapped[str] = mapped_column(String(200))
    link: Mapped[str] = mapped_column(String(300), default="")  # where a person opens the item
    state: Mapped[str] = mapped_column(String(40))
    queue_role: Mapped[str | None] = mapped_column(String(32))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_user.id"))
    opened_at: Mapped[datetime]
    entered_state_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    closed: Mapped[bool] = mapped_column(default=False)
    overdue_announced: Mapped[bool] = mapped_column(default=False)
    closed_at: Mapped[datetime | None]


class StatefulRow(Protocol):
    id: uuid.UUID
    state: str


def start(
    session: Session, definition: WorkflowDefinition, entity: StatefulRow, *, title: str, link: str = ""
) -> WorkItem:
    """Put a new row into its process's initial state and open its work item."""
    now = utcnow()
    entity.state = definition.initial
    spec = definition.state(definition.initial)
    due = now + spec.sla if spec.sla else None
    item = WorkItem(
        id=uuid7(),
        workflow=definition.name,
        entity_id=entity.id,
        title=title,
        link=link,
        state=definition.initial,
        queue_role=spec.queue_role,
        opened_at=now,
        entered_state_at=now,
        due_at=due,
        closed=spec.final,
        closed_at=now if spec.final else None,
    )
    session.add(item)
    _write_history(session, definition, entity.id, "start", None, definition.initial, None, now, due)
    return item


def do_transition(
    session: Session,
    definition: WorkflowDefinition,
    entity: StatefulRow,
    action: str,
    *,
    permissions: frozenset[str],
    reason: str | None = None,
    assignee_id: uuid.UUID | None = None,
) -> WorkflowTransition:
    """Fire `action` on `entity`: check it, move the row, the work item and the clock, write history."""
    try:
        transition = definition.check(action, entity.state, reason=reason)
    except WorkflowError as exc:
        raise ValidationFailed(str(exc)) from exc
    if transition.permission and transition.permission not in permissions:
        raise PermissionDenied(f"you may not {transition.label or transition.name}")
    now = utcnow()
    from_state, to_state = entity.state, transition.target
    spec = definition.state(to_state)
    due = now + spec.sla if spec.sla else None
    entity.state = to_state
    item = session.execute(
        select(WorkItem).where(WorkItem.workflow == definition.name, WorkItem.entity_id == entity.id)
    ).scalar_one()
    item.state = to_state
    item.queue_role = spec.queue_role
    item.entered_state_at = now
    item.due_at = due
    item.overdue_announced = False  # a new state starts a new clock
    if assignee_id is not None:
        item.assignee_id = assignee_id
    item.closed = spec.final
    item.closed_at = now if spec.final else None
    row = _write_history(session, definition, entity.id, action, from_state, to_state, reason, now, due)
    emit(
        session,
        f"workflow.{definition.name}.{action}",
        {"entity_id": str(entity.id), "from": from_state, "to": to_state, "reason": reason},
    )
    return row


def _write_history(
    session: Session,
    definition: WorkflowDefinition,
    entity_id: uuid.UUID,
    action: str,
    from_state: str | None,
    to_state: str,
    reason: str | None,
    at: datetime,
    due: datetime | None,
) -> WorkflowTransition:
    actor = actor_of(session)
    row = WorkflowTransition(
        id=uuid7(),
        workflow=definition.name,
        entity_id=entity_id,
        action=action,
        from_state=from_state,
        to_state=to_state,
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label,
        reason=reason,
        at=at,
        due_at=due,
    )
    session.add(row)
    return row


def history(session: Session, workflow_name: str, entity_id: uuid.UUID) -> list[WorkflowTransition]:
    return list(
        session.execute(
            select(WorkflowTransition)
            .where(WorkflowTransition.workflow == workflow_name, WorkflowTransition.entity_id == entity_id)
            .order_by(WorkflowTransition.at, WorkflowTransition.id)
        ).scalars()
    )


@dataclass(frozen=True)
class Activity:
    item: WorkItem
    overdue: bool


def list_activity(
    session: Session,
    *,
    roles: frozenset[str],
    user_id: uuid.UUID | None,
    only_overdue: bool = False,
    limit: int = 200,
) -> list[Activity]:
    """Open work for these roles or this person, most urgent first."""
    now = utcnow()
    who: list[ColumnElement[bool]] = [WorkItem.queue_role.in_(sorted(roles))]
    if user_id is not None:
        who.append(WorkItem.assignee_id == user_id)
    query = select(WorkItem).where(WorkItem.closed.is_(False), or_(*who))
    if only_overdue:
        query = query.where(WorkItem.due_at < now)
    query = query.order_by(WorkItem.due_at.is_(None), WorkItem.due_at, WorkItem.opened_at).limit(limit)
    items = session.execute(query).scalars().all()
    return [Activity(i, i.due_at is not None and i.due_at < now) for i in items]
