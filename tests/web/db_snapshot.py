"""Whole-database snapshots, to show that a refused request changed nothing."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Table, select

from citygas.models import metadata
from citygas.platform.db import READ_ONLY
from citygas.platform.uow import Database

Rows = dict[str, list[tuple[Any, ...]]]


def _ordered(table: Table) -> list[Any]:
    return list(table.primary_key.columns) or list(table.columns)


def snapshot(db: Database, *, tenant_id: uuid.UUID | None = None) -> Rows:
    """Every row of every table, or, with `tenant_id`, every row that belongs to that tenant: rows
    carrying its `tenant_id`, and the tenant row itself."""
    rows: Rows = {}
    with db.engine.execution_options(**{READ_ONLY: True}).connect() as conn:
        for table in metadata.sorted_tables:
            query = select(table).order_by(*_ordered(table))
            if tenant_id is not None:
                if "tenant_id" in table.c:
                    query = query.where(table.c.tenant_id == tenant_id)
                elif table.name == "tenant":
                    query = query.where(table.c.id == tenant_id)
                else:
                    continue
            rows[table.name] = [tuple(row) for row in conn.execute(query)]
    return rows


def differences(before: Rows, after: Rows) -> dict[str, tuple[int, int]]:
    """Tables whose rows differ, with their row counts before and after."""
    return {
        name: (len(before.get(name, [])), len(after.get(name, [])))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


def cells_containing(db: Database, needle: str) -> list[str]:
    """`table.column` of every stored value whose text contains `needle`."""
    found: list[str] = []
    with db.engine.execution_options(**{READ_ONLY: True}).connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for column, value in zip(table.columns, row, strict=True):
                    if value is not None and needle in str(value):
                        found.append(f"{table.name}.{column.name}")
    return found
