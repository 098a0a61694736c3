"""The transactional outbox: events written in the same transaction as the change that caused them,
relayed after commit by the worker to their handlers — at least once, with exponential back-off and a
dead-letter state.

Handlers are idempotent by contract. A handler that writes to the database runs in the same
transaction that records it as done (`outbox_handled`), so for database effects the relay is exactly
once even across a crash; a handler with outside effects (an SMS, a webhook) must carry the event id
to its recipient as an idempotency key.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import JSON, ForeignKey, Index, String, Table, Text, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from citygas.platform.bulk import insert_rows
from citygas.platform.db import Base, IdMixin
from citygas.platform.ids import uuid7
from citygas.platform.tenancy import SYSTEM, TENANT_KEY, set_tenant
from citygas.platform.time import utcnow

log = logging.getLogger(__name__)


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"


class OutboxEvent(IdMixin, Base):
    """Not tenant-scoped for reads: only the worker reads it, in the platform scope. It still records
    the tenant so handlers run inside that tenant's wall."""

    __tablename__ = "outbox_event"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    topic: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(8), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None]


class OutboxHandled(Base):
    """One row per (event, handler) that completed; a retry skips the handlers already done."""

    __tablename__ = "outbox_handled"

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("outbox_event.id"), primary_key=True)
    handler: Mapped[str] = mapped_column(String(120), primary_key=True)
    handled_at: Mapped[datetime]


@dataclass(frozen=True)
class Event:
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    topic: str
    payload: dict[str, Any]
    attempt: int


Handler = Callable[[Session, Event], None]
_handlers: dict[str, list[tuple[str, Handler]]] = {}


def handles(topic: str, *, name: str | None = None) -> Callable[[Handler], Handler]:
    """Register a handler for a topic. The name identifies it in `outbox_handled`: keep it stable."""

    def register(fn: Handler) -> Handler:
        handler_name = name or f"{fn.__module__}.{fn.__qualname__}"
        entries = _handlers.setdefault(topic, [])
        if all(existing != handler_name for existing, _ in entries):
            entries.append((handler_name, fn))
        return fn

    return register


def handlers_for(topic: str) -> list[tuple[str, Handler]]:
    return list(_handlers.get(topic, []))


def emit(
    session: Session, topic: str, payload: dict[str, Any], *, tenant_id: uuid.UUID | None = None
) -> uuid.UUID:
    """Add an event to the outbox inside the caller's transaction; it is relayed only if that commits.

    Inserted at once with a Core statement built once (every vend emits two events, and the ORM's
    unit of work cost more than the INSERT): the row is the same the flush would write, and a rolled-back
    transaction or savepoint takes it with it, as it would have taken the pending object."""
    (event_id,) = emit_many(session, [(topic, payload)], tenant_id=tenant_id)
    return event_id


def emit_many(
    session: Session, events: Sequence[tuple[str, dict[str, Any]]], *, tenant_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """`emit` for several (topic, payload) events at once: one INSERT of many rows (a batch of vends)."""
    tenant = tenant_id if tenant_id is not None else session.info.get(TENANT_KEY)
    now = utcnow()
    ids = [uuid7() for _ in events]
    rows = [
        {
            "id": event_id,
            "tenant_id": tenant if isinstance(tenant, uuid.UUID) else None,
            "topic": topic,
            "payload": payload,
            "created_at": now,
            "next_attempt_at": now,
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
        }
        for event_id, (topic, payload) in zip(ids, events, strict=True)
    ]
    if rows:
        # Platform-scoped table (not TenantScoped): the central scoping has nothing to check on an INSERT.
        insert_rows(session, cast(Table, OutboxEvent.__table__), rows)
    return ids


def backoff(attempts: int, *, base_seconds: float = 2.0, cap_seconds: float = 3600.0) -> timedelta:
    """Exponential back-off with full jitter on the upper half, so retries of a burst spread out."""
    ceiling = min(cap_seconds, base_seconds * (2 ** max(attempts - 1, 0)))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311 - jitter, not security


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class OutboxRelay:
    """Claims due events in batches with a lease, runs their handlers, records the outcome."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        worker_id: str | None = None,
        lease: timedelta = timedelta(seconds=60),
        max_attempts: int = 8,
    ) -> None:
        self.session_factory = session_factory
        self.worker_id = worker_id or worker_identity()
        self.lease = lease
        self.max_attempts = max_attempts

    def claim(self, batch_size: int) -> list[uuid.UUID]:
        now = utcnow()
        with self.session_factory() as session:
            set_tenant(session, SYSTEM)
            query = (
                select(OutboxEvent.id)
                .where(
                    OutboxEvent.status == OutboxStatus.PENDING,
                    OutboxEvent.next_attempt_at <= now,
                    or_(OutboxEvent.locked_until.is_(None), OutboxEvent.locked_until < now),
                )
                .order_by(OutboxEvent.id)
                .limit(batch_size)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(session.execute(query).scalars())
            if ids:
                session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id.in_(ids))
                    .values(locked_by=self.worker_id, locked_until=now + self.lease)
                )
            session.commit()
            return ids

    def relay_once(self, batch_size: int = 100) -> int:
        """Handle one batch; returns how many events were claimed."""
        ids = self.claim(batch_size)
        for event_id in ids:
            self._handle(event_id)
        return len(ids)

    def _handle(self, event_id: uuid.UUID) -> None:
        with self.session_factory() as session:
            set_tenant(session, SYSTEM)
            row = session.get(OutboxEvent, event_id)
            if row is None or row.status != OutboxStatus.PENDING or row.locked_by != self.worker_id:
                session.rollback()
                return
            event = Event(row.id, row.tenant_id, row.topic, dict(row.payload), row.attempts + 1)
            done = set(
                session.execute(
                    select(OutboxHandled.handler).where(OutboxHandled.event_id == event_id)
                ).scalars()
            )
            try:
                for name, handler in handlers_for(event.topic):
                    if name in done:
                        continue
                    # Handlers run inside the event's tenant wall, never in the platform scope.
                    if event.tenant_id is not None:
                        set_tenant(session, event.tenant_id)
                    handler(session, event)
                    set_tenant(session, SYSTEM)
                    session.add(OutboxHandled(event_id=event_id, handler=name, handled_at=utcnow()))
                    session.flush()
                row.status = OutboxStatus.DONE
                row.done_at = utcnow()
                row.locked_by = None
                row.locked_until = None
                row.attempts = event.attempt
                session.commit()
            except Exception as exc:  # noqa: BLE001 - any handler failure is retried, never lost
                session.rollback()
                log.warning("outbox handler failed", extra={"event_id": str(event_id), "topic": event.topic})
                self._record_failure(event_id, event.attempt, f"{type(exc).__name__}: {exc}")

    def _record_failure(self, event_id: uuid.UUID, attempt: int, error: str) -> None:
        with self.session_factory() as session:
            set_tenant(session, SYSTEM)
            row = session.get(OutboxEvent, event_id)
            if row is None:
                return
            row.attempts = attempt
            row.last_error = error[:4000]
            row.locked_by = None
            row.locked_until = None
            if attempt >= self.max_attempts:
                row.status = OutboxStatus.DEAD
                log.error("outbox event dead-lettered", extra={"event_id": str(event_id), "topic": row.topic})
            else:
                row.next_attempt_at = utcnow() + backoff(attempt)
            session.commit()


def requeue_dead(session: Session, event_id: uuid.UUID) -> None:
    """An operator sends a dead-lettered event round again after fixing its cause."""
    row = session.get(OutboxEvent, event_id)
    if row is None or row.status != OutboxStatus.DEAD:
        raise ValueError("only a dead-lettered event can be requeued")
    row.status = OutboxStatus.PENDING
    row.attempts = 0
    row.next_attempt_at = utcnow()
