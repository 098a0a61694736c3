"""The unit of work: one transaction per use case. It rolls back unless told to commit, and it is the
only thing in citygas that commits. Tenant, actor and request id ride on the session so that the
audit log, workflow history and outbox rows of the transaction all agree."""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Self

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from citygas.platform.context import SYSTEM_ACTOR, Actor, set_actor, set_reason, set_request_id
from citygas.platform.db import READ_ONLY
from citygas.platform.tenancy import SYSTEM, set_tenant


class Database:
    """Engine plus the two session factories (writes, and reads that never take the write lock)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.write_sessions = sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
        self.read_sessions = sessionmaker(
            bind=engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False, autoflush=True
        )

    def unit_of_work(
        self,
        *,
        tenant: uuid.UUID | str,
        actor: Actor = SYSTEM_ACTOR,
        request_id: str | None = None,
        read_only: bool = False,
    ) -> UnitOfWork:
        factory = self.read_sessions if read_only else self.write_sessions
        return UnitOfWork(factory(), tenant=tenant, actor=actor, request_id=request_id)

    def system(self, *, read_only: bool = False) -> UnitOfWork:
        """The platform scope: no tenant wall. For login look-ups, the operator's tenant admin, the worker."""
        return self.unit_of_work(tenant=SYSTEM, read_only=read_only)


class UnitOfWork:
    def __init__(
        self, session: Session, *, tenant: uuid.UUID | str, actor: Actor, request_id: str | None
    ) -> None:
        self.session = session
        set_tenant(session, tenant)
        set_actor(session, actor)
        set_request_id(session, request_id)
        self._committed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def because(self, reason: str | None) -> Self:
        """Record why: the reason lands on every audit row this transaction writes."""
        set_reason(self.session, reason)
        return self

    def commit(self) -> None:
        self.session.commit()
        self._committed = True

    def rollback(self) -> None:
        self.session.rollback()

    def close(self) -> None:
        # close() rolls back whatever was not committed, and, unlike rollback(), leaves loaded rows
        # readable (detached, not expired) for the page that renders them afterwards.
        self.session.close()
