"""Ledger tables: accounts, journal entries and their posting lines (append-only), derived balances, and
the book (one row per tenant) that carries the period close.

Postings and entries are never updated or deleted: an ORM guard refuses it at flush, and database
triggers (migration 0003) refuse an UPDATE from any client. Corrections are reversing entries.

Accounts, entries and the book are audited, but explicitly (`audit.record` in the service) rather than
with the `Audited` mixin: they are inserted with INSERT .. ON CONFLICT DO NOTHING, which the flush-time
audit does not see, so that a concurrent retry never rolls a savepoint back (a savepoint rollback makes
the platform forget every audit row pending in the transaction); and the mixin's serialiser does not
take `date` values yet.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from citygas.platform.db import Base, IdMixin
from citygas.platform.tenancy import TenantScoped


class LedgerAccount(IdMixin, TenantScoped, Base):
    """An account of the tenant's chart; `party` names the customer, agent or state of a sub-account
    ('' for the tenant-wide account of a code)."""

    __tablename__ = "ledger_account"
    __table_args__ = (
        Index("uq_ledger_account_tenant_code_party", "tenant_id", "code", "party", unique=True),
    )

    code: Mapped[str] = mapped_column(String(40))
    party: Mapped[str] = mapped_column(String(64), default="")
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class AccountBalance(TenantScoped, Base):
    """The balance of an account (debit-positive paise), kept in the posting's transaction for fast
    reads. Derived data: `rebuild_balances` recomputes it from the postings."""

    __tablename__ = "ledger_account_balance"

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_account.id"), primary_key=True)
    balance_paise: Mapped[int] = mapped_column(default=0)
    posting_count: Mapped[int] = mapped_column(default=0)


class BalanceShard(TenantScoped, Base):
    """A slice of a tenant-wide account's balance (clearing, VAT payable, token rounding): every vend
    posts to these, so one balance row would make all of a tenant's vends queue on its lock until they
    commit. A posting adds its delta to one of `BALANCE_SHARDS` slices instead (chosen per transaction),
    and the balance is the account's `AccountBalance` row plus the sum of its slices. Derived data like
    the balance row: `rebuild_balances` checks and repairs the sum."""

    __tablename__ = "ledger_balance_shard"

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_account.id"), primary_key=True)
    shard: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    balance_paise: Mapped[int] = mapped_column(default=0)
    posting_count: Mapped[int] = mapped_column(default=0)


class JournalEntry(IdMixin, TenantScoped, Base):
    __tablename__ = "ledger_entry"
    __table_args__ = (
        # One entry per idempotency key and tenant: a retry, even a concurrent one, finds the first.
        Index("uq_ledger_entry_tenant_idempotency_key", "tenant_id", "idempotency_key", unique=True),
        Index("ix_ledger_entry_tenant_reference", "tenant_id", "reference"),
        Index("ix_ledger_entry_tenant_effective", "tenant_id", "effective_date"),
    )

    idempotency_key: Mapped[str] = mapped_column(String(120))
    reference: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(40))
    memo: Mapped[str] = mapped_column(String(500), default="")
    effective_date: Mapped[date] = mapped_column(Date)
    posted_at: Mapped[datetime]
    reverses_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_entry.id"))


class Posting(IdMixin, TenantScoped, Base):
    """One line of an entry: a debit (positive) or a credit (negative) of an account, in paise."""

    __tablename__ = "ledger_posting"
    __table_args__ = (
        CheckConstraint("amount_paise <> 0", name="nonzero"),
        # Statements and `rebuild_balances` read an account's postings.
        Index("ix_ledger_posting_account", "account_id", "entry_id"),
    )

    entry_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_entry.id"), index=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_account.id"))
    line_no: Mapped[int]
    amount_paise: Mapped[int]


class LedgerBook(IdMixin, TenantScoped, Base):
    """The tenant's book: postings dated on or before `closed_through` are refused. Every posting reads
    this row under a share lock, so a close waits for postings in flight and none slips in behind it."""

    __tablename__ = "ledger_book"
    __table_args__ = (Index("uq_ledger_book_tenant", "tenant_id", unique=True),)

    closed_through: Mapped[date | None] = mapped_column(Date)
    closed_at: Mapped[datetime | None]


class AppendOnlyViolation(RuntimeError):
    """Code tried to change or remove a posted entry; post a reversing entry instead."""


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_postings(session: Session, _ctx: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, JournalEntry | Posting) and (
            obj in session.deleted or session.is_modified(obj, include_collections=False)
        ):
            raise AppendOnlyViolation(
                f"{type(obj).__name__} {obj.id} is posted and cannot change; post a reversing entry"
            )
