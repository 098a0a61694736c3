"""INSERTs of many rows at once, for hot paths that write a batch (the vends of a batch, their ledger lines).

On PostgreSQL the rows travel as ONE JSON parameter, read back into rows by `json_populate_recordset`:

    INSERT INTO vend (id, …) SELECT id, … FROM json_populate_recordset(NULL::vend, CAST(:rows AS json)) …

Why not a multi-row VALUES list or the driver's executemany: the statement's text then changes with the
number of rows, and every new text is parsed again by the driver (psycopg re-splits long statements
every time) and planned again by the server; pipelined executemany sends a statement per row. This text
never changes, so it is prepared once per connection. The record type is the table's own, so every
value is cast as the column says. On SQLite (embedded, no network) the rows go through SQLAlchemy's
executemany.

`shape` adds the rest of the statement (ON CONFLICT, RETURNING) to the INSERT it is given, the same for
one row and for many: one function per statement, kept at module level so that the built statements are
cached (building a statement costs more than running it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime
from enum import Enum
from functools import cache
from typing import Any

from sqlalchemy import Result, Table, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

Shape = Callable[[Any], Any]


def _as_is(insert: Any) -> Any:
    return insert


def insert_rows(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], shape: Shape = _as_is
) -> Result[Any]:
    """INSERT `rows` (all with the same keys) into `table`, shaped by `shape`; the statement's result."""
    dialect = session.get_bind().dialect.name
    if len(rows) > 1 and dialect == "postgresql":
        statement = _from_json(table, tuple(rows[0]), shape)
        return session.execute(statement, {"rows": json.dumps(rows, default=_json_value)})
    statement = _one_by_one(dialect, table, shape)
    return session.execute(statement, list(rows) if len(rows) > 1 else rows[0])


@cache
def _one_by_one(dialect: str, table: Table, shape: Shape) -> Any:
    return shape((pg_insert if dialect == "postgresql" else sqlite_insert)(table))


@cache
def _from_json(table: Table, names: tuple[str, ...], shape: Shape) -> Any:
    columns = ", ".join(f'"{name}"' for name in names)
    rows = text(
        f'SELECT {columns} FROM json_populate_recordset(NULL::"{table.name}", CAST(:rows AS json))'  # noqa: S608 - names are the table's own columns
    ).columns(*(table.c[name] for name in names))
    return shape(pg_insert(table).from_select(list(names), rows))


def _json_value(value: Any) -> Any:
    """How a value the ORM would bind goes into the JSON rows (PostgreSQL casts it by the column)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} refused: store aware UTC")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} has no JSON form for a bulk insert")
