"""Per-tenant human numbers (consumer, application, receipt, ticket): printable, unique and gap-free.

The counter row is incremented inside the business transaction. A rolled-back transaction takes its
number back with it, so auditors see no gaps; concurrent callers queue on the counter row (row lock
on PostgreSQL, the write lock on SQLite), so no number is given twice.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from functools import cache
from typing import Any, cast

from sqlalchemy import ForeignKey, String, Table, bindparam, select, update
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
    """The next printable number of this kind for the session's tenant, e.g. 'DGN-C-00000042'.

    One statement: the counter row stays locked until the caller's transaction ends, so callers on a
    hot path (the vend) take their number as late as they can."""
    (number,) = take_numbers(session, kind, 1, width=width)
    return number


def take_numbers(session: Session, kind: NumberKind, count: int, *, width: int = 8) -> list[str]:
    """The next `count` numbers of this kind, consecutive, in one statement (a batch of vends)."""
    if count < 1:
        return []
    last, prefix = _increment(session, current_tenant(session), kind, count)
    return [f"{prefix or 'X'}-{kind.value}-{value:0{width}d}" for value in range(last - count + 1, last + 1)]


@cache
def _bump() -> Any:
    """The increment, built once (building costs more than running it), with the tenant's code."""
    sequence, tenant = cast(Table, NumberSequence.__table__), cast(Table, Tenant.__table__)
    code = select(tenant.c.code).where(tenant.c.id == bindparam("tenant")).scalar_subquery()
    return (
        update(sequence)
        .where(sequence.c.tenant_id == bindparam("tenant"), sequence.c.kind == bindparam("number_kind"))
        .values(last_value=sequence.c.last_value + bindparam("count"))
        .returning(sequence.c.last_value, code)
    )


def _create_counter(session: Session, tenant_id: uuid.UUID, kind: NumberKind) -> None:
    insert_once = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert_once(NumberSequence)
        .values(tenant_id=tenant_id, kind=kind.value, last_value=0)
        .on_conflict_do_nothing(index_elements=["tenant_id", "kind"])
    )


def _increment(
    session: Session, tenant_id: uuid.UUID, kind: NumberKind, count: int = 1
) -> tuple[int, str | None]:
    """Move the counter on by `count`; its new last value (the last number taken) and the tenant's code."""
    bump = _bump()
    params = {"tenant": tenant_id, "number_kind": kind.value, "count": count}
    row = session.execute(bump, params).one_or_none()
    if row is not None:
        return int(row[0]), row[1]
    # First number of this kind for the tenant: create the counter (a concurrent first caller may win
    # the race, which ON CONFLICT absorbs), then take the number under the row lock like everyone else.
    _create_counter(session, tenant_id, kind)
    value, prefix = session.execute(bump, params).one()
    return int(value), prefix
