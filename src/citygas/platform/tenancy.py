"""Tenancy: a tenant is a CGD. Every business row carries `tenant_id`, and the scoping lives here,
in one place, rather than in each query.

How the wall works:
- A session carries the caller's tenant in `session.info[TENANT_KEY]`.
- Every ORM SELECT, UPDATE and DELETE on a `TenantScoped` class gets `tenant_id = :caller` added
  (`with_loader_criteria`, which also reaches relationship loads and joined entities).
- A query on a session with no tenant fails closed with `TenantContextMissing`, unless the caller
  asked for the platform scope explicitly (`SYSTEM`), which only platform code paths do
  (login look-ups, the operator's tenant admin, the worker).
- A Core statement (on `Model.__table__`, no ORM entity) is out of reach of the loader criteria, so
  on a tenant-scoped table it fails closed too (`TenantFilterMissing`) unless it is marked with
  `tenant_filtered(...)`: its author wrote `tenant_id = :tenant` on every scoped table by hand. Hot
  paths (the vend) use that to skip the per-statement cost of the criteria.
- A new row gets the caller's tenant; a row claiming another tenant is refused at flush.
"""

from __future__ import annotations

import uuid
from typing import Any, Final, TypeVar

from sqlalchemy import Executable, ForeignKey, Index, String, Table, event
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.sql import visitors

from citygas.platform.auditable import Audited
from citygas.platform.db import Base, IdMixin

TENANT_KEY: Final = "citygas_tenant_id"
SYSTEM: Final = "system"
TENANT_FILTERED: Final = "citygas_tenant_filtered"
_S = TypeVar("_S", bound=Executable)


class TenantContextMissing(RuntimeError):
    """A tenant-scoped query ran without a tenant: a programming error, never a user's."""


class TenantFilterMissing(TenantContextMissing):
    """A Core statement on a tenant-scoped table that does not say it filters by tenant itself."""


class TenantViolation(RuntimeError):
    """Code tried to write a row into another tenant."""


class TenantScoped:
    """Mixin for every business table: the distribution column for a sharded PostgreSQL (Citus) too."""

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805 - SQLAlchemy declared_attr convention
        return mapped_column(ForeignKey("tenant.id"), index=True, nullable=False)


def set_tenant(session: Session, tenant: uuid.UUID | str) -> None:
    session.info[TENANT_KEY] = tenant


def current_tenant(session: Session) -> uuid.UUID:
    tenant = session.info.get(TENANT_KEY)
    if not isinstance(tenant, uuid.UUID):
        raise TenantContextMissing("this operation needs a tenant and the session has none")
    return tenant


def tenant_filtered(statement: _S) -> _S:
    """Mark a Core statement whose every tenant-scoped table is filtered by `tenant_id` in the statement
    itself (the author's promise, kept next to the statement): the central scoping then only checks that
    the session has a tenant. For hot paths; everything else uses ORM statements and the criteria."""
    return statement.execution_options(**{TENANT_FILTERED: True})


def is_system(session: Session) -> bool:
    return session.info.get(TENANT_KEY) == SYSTEM


_scoped_tables: dict[str, type[TenantScoped]] = {}


def _scoped_table_map() -> dict[str, type[TenantScoped]]:
    if not _scoped_tables:
        for mapper in Base.registry.mappers:
            cls = mapper.class_
            if issubclass(cls, TenantScoped):
                for table in mapper.tables:
                    _scoped_tables[table.name] = cls
    return _scoped_tables


def _scoped_entities(statement: Any) -> set[type[TenantScoped]]:
    """Every tenant-scoped model the statement reads or writes, found in its FROM clauses too, so that
    `select(func.count()).select_from(Customer)` is scoped like `select(Customer)`."""
    scoped = _scoped_table_map()
    found: set[type[TenantScoped]] = set()
    for element in visitors.iterate(statement):
        if isinstance(element, Table) and element.name in scoped:
            found.add(scoped[element.name])
    return found


@event.listens_for(Session, "do_orm_execute")
def _scope_to_tenant(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    tenant = state.session.info.get(TENANT_KEY)
    if tenant == SYSTEM:
        return
    if state.execution_options.get(TENANT_FILTERED):
        if not isinstance(tenant, uuid.UUID):
            raise TenantContextMissing("a tenant-filtered statement ran on a session without a tenant")
        return
    entities = _scoped_entities(state.statement)
    if not entities:
        return
    if not isinstance(tenant, uuid.UUID):
        raise TenantContextMissing(
            "a tenant-scoped query ran on a session without a tenant; set one or use the SYSTEM scope"
        )
    if not state.is_orm_statement:
        # Loader criteria reach ORM entities only: a Core statement would read every tenant's rows.
        names = ", ".join(sorted(e.__name__ for e in entities))
        raise TenantFilterMissing(
            f"a Core statement on tenant-scoped {names} is not scoped; use ORM entities, or filter "
            "by tenant_id by hand and mark it with tenant_filtered()"
        )
    # One criteria option per model: the option for the mixin as a whole does not reach a model that
    # appears only in select_from() or a correlated subquery.
    state.statement = state.statement.options(
        *(
            with_loader_criteria(entity, lambda cls: cls.tenant_id == tenant, include_aliases=True)
            for entity in sorted(entities, key=lambda e: e.__name__)
        )
    )


@event.listens_for(Session, "before_flush")
def _stamp_tenant(session: Session, _ctx: Any, _instances: Any) -> None:
    tenant = session.info.get(TENANT_KEY)
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, TenantScoped):
            continue
        row_tenant = obj.tenant_id
        if row_tenant is None:
            if not isinstance(tenant, uuid.UUID):
                raise TenantContextMissing(f"new {type(obj).__name__} has no tenant and the session none")
            obj.tenant_id = tenant
        elif isinstance(tenant, uuid.UUID) and row_tenant != tenant:
            raise TenantViolation(f"{type(obj).__name__} belongs to another tenant")


# The models of the tenancy itself. `tenant` is the wall, so it is not tenant-scoped; code reads it
# through `access_tenant`-style functions that check the caller.


class Tenant(IdMixin, Audited, Base):
    __tablename__ = "tenant"

    slug: Mapped[str] = mapped_column(String(32), unique=True)
    code: Mapped[str] = mapped_column(String(8), unique=True)  # prefix of printed numbers
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="cgd")  # cgd | operator
    state: Mapped[str] = mapped_column(String(64), default="")
    helpline: Mapped[str] = mapped_column(String(32), default="")
    emergency_number: Mapped[str] = mapped_column(String(32), default="1906")
    active: Mapped[bool] = mapped_column(default=True)


class GeographicalArea(IdMixin, TenantScoped, Audited, Base):
    """A GA licensed to the CGD by PNGRB."""

    __tablename__ = "geographical_area"
    __table_args__ = (Index("uq_ga_tenant_code", "tenant_id", "code", unique=True),)

    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(64))
    authorised_round: Mapped[str] = mapped_column(String(16), default="")


class ChargeArea(IdMixin, TenantScoped, Audited, Base):
    """A charge area or town inside a GA: the unit tariffs and field teams are organised by."""

    __tablename__ = "charge_area"
    __table_args__ = (Index("uq_charge_area_tenant_code", "tenant_id", "code", unique=True),)

    ga_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("geographical_area.id"), index=True)
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    pincode: Mapped[str] = mapped_column(String(6), default="")
