"""Per-tenant human numbers (consumer, application, receipt, ticket): printable, unique and gap-free.

The counter row is incremented inside the business transaction. A rolled-back transaction takes its
number back with it, so auditors see no gaps; concurrent callers queue on the counter row (row lock
on PostgreSQL, the write lock on SQLite), so no number is given twice.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import ForeignKey, String, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from citygas.platform.db import Base
from citygas.platform.tenancy import Tenant, current_tenant


class NumberKind(StrEnum):
    CONSUMER = "C"
    APPLICATION = "A"
    RECEIPT = "R"
    TICKET = "T"
    JOB = "J"


class NumberSequence(Base):
    __tablename__ = "number_sequence"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    last_value: Mapped[int] = mapped_column(default=0)


def next_number(session: Session, kind: NumberKind, *, width: int = 8) -> str:
    """The next printable number of this kind for the session's tenant, e.g. 'DGN-C-00000042'."""
    tenant_id = current_tenant(session)
    value = _increment(session, tenant_id, kind)
    code = session.get(Tenant, tenant_id)
    prefix = code.code if code is not None else "X"
    return f"{prefix}-{kind.value}-{value:0{width}d}"


def _increment(session: Session, tenant_id: uuid.UUID, kind: NumberKind) -> int:
    bump = (
        update(NumberSequence)
        .where(NumberSequence.tenant_id == tenant_id, NumberSequence.kind == kind.value)
        .values(last_value=NumberSequence.last_value + 1)
        .returning(NumberSequence.last_value)
    )
    value = session.execute(bump).scalar_one_or_none()
    if value is not None:
        return int(value)
    # First number of this kind for the tenant: create the counter (a concurrent first caller may win
    # the race, which ON CONFLICT absorbs), then take the number under the row lock like everyone else.
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(NumberSequence)
        .values(tenant_id=tenant_id, kind=kind.value, last_value=0)
        .on_conflict_do_nothing(index_elements=["tenant_id", "kind"])
    )
    return int(session.execute(bump).scalar_one())
