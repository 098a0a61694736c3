"""The audit log: every mutation writes a row (actor, tenant, action, entity, before/after, request id,
time, reason), hash-chained per tenant so that a row changed or removed behind the application's back
shows up in `citygas audit verify`.

Rows are written centrally at flush for every `Audited` model, so no use case can forget them. The
chain head of a tenant is locked for the rest of the transaction (row lock on PostgreSQL; SQLite
already holds its write lock), which orders the chain exactly as transactions commit.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    String,
    Table,
    bindparam,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column

from citygas.platform.auditable import Audited
from citygas.platform.context import actor_of, reason_of, request_id_of
from citygas.platform.db import Base, IdMixin
from citygas.platform.ids import uuid7
from citygas.platform.tenancy import SYSTEM, TENANT_KEY, TenantScoped
from citygas.platform.time import utcnow

GENESIS = "0" * 64
_PENDING_KEY = "citygas_audit_pending"
REDACTED = "[redacted]"


class AuditEntry(IdMixin, TenantScoped, Base):
    __tablename__ = "audit_entry"
    __table_args__ = (Index("uq_audit_tenant_seq", "tenant_id", "seq", unique=True),)

    seq: Mapped[int]
    at: Mapped[datetime]
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None]
    actor_label: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(80), index=True)
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(500))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The last link of each tenant's chain; platform-internal, read and written only here."""

    __tablename__ = "audit_chain_head"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    return value


_HASHED = (
    "tenant_id",
    "seq",
    "at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "entity_type",
    "entity_id",
    "before",
    "after",
    "request_id",
    "reason",
    "prev_hash",
)


def entry_digest(entry: AuditEntry) -> str:
    return _digest({column: getattr(entry, column) for column in _HASHED})


def _digest(row: dict[str, Any]) -> str:
    """The hash of a row of `audit_entry` as its column values (the chain's canonical form)."""
    body = {
        "tenant_id": str(row["tenant_id"]),
        "seq": row["seq"],
        "at": row["at"].isoformat(),
        "actor": [row["actor_kind"], str(row["actor_id"]) if row["actor_id"] else None, row["actor_label"]],
        "action": row["action"],
        "entity": [row["entity_type"], row["entity_id"]],
        "before": row["before"],
        "after": row["after"],
        "request_id": row["request_id"],
        "reason": row["reason"],
        "prev": row["prev_hash"],
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _entity_name(obj: object) -> str:
    name = getattr(obj, "__audit_entity__", None)
    return name if isinstance(name, str) else str(getattr(obj, "__tablename__", type(obj).__name__))


def _row_changes(obj: object, *, only_changed: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    state = inspect(obj)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        key = attr.key
        redact = any(col.info.get("redact") for col in attr.columns)
        hist = state.attrs[key].history
        if only_changed and not hist.has_changes():
            continue
        old = hist.deleted[0] if hist.deleted else (hist.unchanged[0] if hist.unchanged else None)
        new = hist.added[0] if hist.added else (hist.unchanged[0] if hist.unchanged else None)
        before[key] = REDACTED if redact and old is not None else _jsonable(old)
        after[key] = REDACTED if redact and new is not None else _jsonable(new)
    return before, after


@dataclass
class _PendingEntry:
    tenant_id: uuid.UUID
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    # Taken when the entry is recorded, not at commit: a batch of vends records each request's own id.
    request_id: str | None = None


def record(
    session: Session,
    *,
    action: str,
    entity_type: str,
    entity_id: str,
    tenant_id: uuid.UUID | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> None:
    """Record an action that is not a row change (a login, an export); written at commit, under
    `request_id` (the transaction's own if None)."""
    tenant = tenant_id or session.info.get(TENANT_KEY)
    if not isinstance(tenant, uuid.UUID):
        raise ValueError("an audit row needs a tenant")
    session.info.setdefault(_PENDING_KEY, []).append(
        _PendingEntry(
            tenant, action, entity_type, entity_id, before, after, request_id or request_id_of(session)
        )
    )


def record_created(session: Session, obj: Audited) -> None:
    """The audit row of an `Audited` row that was inserted with a Core statement (which the flush hook
    does not see), exactly as the flush would have written it. Call it with the object as inserted."""
    _, after = _row_changes(obj, only_changed=False)
    session.info.setdefault(_PENDING_KEY, []).append(_pending_for(session, obj, "create", None, after))


def _append(session: Session, pending: list[_PendingEntry]) -> int:
    """Chain the entries onto each tenant's head: lock and read the head, insert the entries (one
    statement), move the head. Core statements built once: this runs in every transaction's last
    moments, while the head is locked, so it has to be quick. Returns how many entries were written."""
    actor = actor_of(session)
    at = utcnow()
    reason = reason_of(session)
    written = 0
    for tenant_id in sorted({p.tenant_id for p in pending}):  # fixed lock order avoids deadlocks
        with session.no_autoflush:
            head = session.execute(_head_statement(), {"tenant": tenant_id}).first()
        last_seq, last_hash = (head[0], head[1]) if head is not None else (0, GENESIS)
        rows: list[dict[str, Any]] = []
        for p in (p for p in pending if p.tenant_id == tenant_id):
            row: dict[str, Any] = {
                "id": uuid7(),
                "tenant_id": tenant_id,
                "seq": last_seq + 1,
                "at": at,
                "actor_kind": actor.kind,
                "actor_id": actor.id,
                "actor_label": actor.label,
                "action": p.action,
                "entity_type": p.entity_type,
                "entity_id": p.entity_id,
                "before": p.before,
                "after": p.after,
                "request_id": p.request_id,
                "reason": reason,
                "prev_hash": last_hash,
            }
            row["hash"] = _digest(row)
            last_seq, last_hash = row["seq"], row["hash"]
            rows.append(row)
        moved = {"tenant": tenant_id, "seq": last_seq, "hash": last_hash}
        if head is None:
            session.add(AuditChainHead(tenant_id=tenant_id, last_seq=last_seq, last_hash=last_hash))
            session.flush()
            session.execute(_insert_entries_statement(), rows)
        elif session.get_bind().dialect.name == "postgresql":
            # Head and rows in one statement: the head stays locked until commit, so a round trip saved
            # here is one that every other transaction of the tenant waits less.
            session.execute(_MOVE_HEAD_AND_INSERT, {**moved, "rows": json.dumps(rows, default=_jsonable)})
        else:
            session.execute(_move_head_statement(), moved)
            session.execute(_insert_entries_statement(), rows)
        written += len(rows)
    return written


_MOVE_HEAD_AND_INSERT = text(
    "WITH moved AS (UPDATE audit_chain_head SET last_seq = :seq, last_hash = :hash "
    "WHERE tenant_id = :tenant) "
    "INSERT INTO audit_entry (id, tenant_id, seq, at, actor_kind, actor_id, actor_label, action, "
    "entity_type, entity_id, before, after, request_id, reason, prev_hash, hash) "
    "SELECT id, tenant_id, seq, at, actor_kind, actor_id, actor_label, action, entity_type, entity_id, "
    "before, after, request_id, reason, prev_hash, hash "
    "FROM json_populate_recordset(NULL::audit_entry, CAST(:rows AS json))"
)


@cache
def _head_statement() -> Any:
    head = cast(Table, AuditChainHead.__table__)
    return (
        select(head.c.last_seq, head.c.last_hash)
        .where(head.c.tenant_id == bindparam("tenant"))
        .with_for_update()
    )


@cache
def _move_head_statement() -> Any:
    head = cast(Table, AuditChainHead.__table__)
    return (
        update(head)
        .where(head.c.tenant_id == bindparam("tenant"))
        .values(last_seq=bindparam("seq"), last_hash=bindparam("hash"))
    )


@cache
def _insert_entries_statement() -> Any:
    return insert(cast(Table, AuditEntry.__table__))


def collect_row_changes(session: Session) -> None:
    """before_flush: turn this flush's inserts, updates and deletes of audited rows into entries."""
    pending: list[_PendingEntry] = []
    for obj in session.new:
        if isinstance(obj, Audited):
            if getattr(obj, "id", None) is None and hasattr(obj, "id"):
                # The entity id must be known now, before the INSERT assigns it.
                obj.id = uuid7()
            _, after = _row_changes(obj, only_changed=False)
            pending.append(_pending_for(session, obj, "create", None, after))
    for obj in session.dirty:
        if isinstance(obj, Audited) and session.is_modified(obj, include_collections=False):
            before, after = _row_changes(obj, only_changed=True)
            if before != after:
                pending.append(_pending_for(session, obj, "update", before, after))
    for obj in session.deleted:
        if isinstance(obj, Audited):
            before, _ = _row_changes(obj, only_changed=False)
            pending.append(_pending_for(session, obj, "delete", before, None))
    if pending:
        # Chained and inserted at commit (see `_seal_at_commit`), when the reason is final and the
        # rows they reference (a new tenant) exist.
        session.info.setdefault(_PENDING_KEY, []).extend(pending)


def _pending_for(
    session: Session, obj: object, verb: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> _PendingEntry:
    tenant = getattr(obj, "tenant_id", None)
    if tenant is None:
        tenant = session.info.get(TENANT_KEY)
    if not isinstance(tenant, uuid.UUID):
        # A tenant row itself: its audit trail lives in its own chain.
        tenant = getattr(obj, "id", None)
    if not isinstance(tenant, uuid.UUID):
        raise ValueError(f"cannot place the audit row of {type(obj).__name__} in a tenant")
    entity = _entity_name(obj)
    entity_id = str(getattr(obj, "id", ""))
    return _PendingEntry(tenant, f"{entity}.{verb}", entity, entity_id, before, after, request_id_of(session))


@dataclass(frozen=True)
class ChainBreak:
    tenant_id: uuid.UUID
    seq: int
    entry_id: uuid.UUID | None
    problem: str


def verify_chain(session: Session) -> Iterator[ChainBreak]:
    """Walk every tenant's chain and yield the first break of each (recomputed hash, link, gap)."""
    if session.info.get(TENANT_KEY) != SYSTEM:
        raise PermissionError("verifying the audit chain needs the platform scope")
    heads = session.execute(select(AuditChainHead)).scalars().all()
    for head in heads:
        expected_prev, expected_seq = GENESIS, 1
        rows = session.execute(
            select(AuditEntry)
            .where(AuditEntry.tenant_id == head.tenant_id)
            .order_by(AuditEntry.seq)
            .execution_options(yield_per=1000)
        ).scalars()
        broken: ChainBreak | None = None
        for entry in rows:
            if entry.seq != expected_seq:
                broken = ChainBreak(head.tenant_id, expected_seq, None, f"row {expected_seq} is missing")
            elif entry.prev_hash != expected_prev:
                broken = ChainBreak(head.tenant_id, entry.seq, entry.id, "link to the previous row broken")
            elif entry_digest(entry) != entry.hash:
                broken = ChainBreak(head.tenant_id, entry.seq, entry.id, "row content changed")
            if broken:
                break
            expected_prev, expected_seq = entry.hash, entry.seq + 1
        if broken is None and (head.last_seq != expected_seq - 1 or head.last_hash != expected_prev):
            broken = ChainBreak(head.tenant_id, expected_seq, None, "rows after the last one were removed")
        if broken:
            yield broken


@event.listens_for(Session, "before_flush")
def _audit_before_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    collect_row_changes(session)


@event.listens_for(Session, "before_commit")
def _seal_at_commit(session: Session) -> None:
    """Chain the transaction's entries at commit: the head row is locked only for the last moment of
    the transaction, and `uow.because(reason)` said anywhere in the use case reaches every entry.
    SQLAlchemy fires this hook when a savepoint is released too; the entries then wait for the real
    commit (sealed at the savepoint, they lost the reason given later and held the head from there on)."""
    if session.in_nested_transaction():
        return
    session.flush()
    pending = session.info.pop(_PENDING_KEY, None)
    if pending:
        _append(session, pending)
        session.flush()


_MARKS_KEY = "citygas_audit_savepoints"


@event.listens_for(Session, "after_transaction_create")
def _audit_mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        marks = session.info.setdefault(_MARKS_KEY, {})
        marks[id(transaction)] = len(session.info.get(_PENDING_KEY, []))


@event.listens_for(Session, "after_soft_rollback")
def _audit_forget(session: Session, previous_transaction: SessionTransaction) -> None:
    """A rolled-back savepoint forgets only the entries collected inside it (the rest of the use case
    goes on and still commits); a rolled-back transaction forgets them all."""
    pending = session.info.get(_PENDING_KEY)
    if previous_transaction.nested:
        mark = session.info.get(_MARKS_KEY, {}).pop(id(previous_transaction), None)
        if pending is not None and mark is not None:
            del pending[mark:]
    elif previous_transaction.parent is None:
        session.info.pop(_PENDING_KEY, None)
        session.info.pop(_MARKS_KEY, None)
