"""Ledger use cases: the chart, posting an entry (balanced, idempotent, append-only), reversing it, closing a
period, reading balances, and rebuilding the derived balances from the postings.

Callers pass a `Session` inside their unit of work; nothing here commits, except `rebuild_balances`,
which is a maintenance command with its own units of work.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Any, cast

from sqlalchemy import Table, event, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from citygas.ledger.models import AccountBalance, JournalEntry, LedgerAccount, LedgerBook, Posting
from citygas.ledger.rules import (
    CHART,
    AccountCode,
    AccountKind,
    Line,
    Party,
    Side,
    check_balanced,
    credit,
    debit,
    in_normal_terms,
    net_by_account,
    nonzero_lines,
    reversal_of,
    same_lines,
)
from citygas.platform.audit import record
from citygas.platform.db import Base
from citygas.platform.errors import Conflict, NotFound, ValidationFailed
from citygas.platform.ids import uuid7
from citygas.platform.tenancy import Tenant, current_tenant
from citygas.platform.time import to_india, utcnow
from citygas.platform.uow import Database
from citygas.tariffs.rules import Allocation, GasSplit


class PeriodClosed(Conflict):
    code = "period_closed"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"


@dataclass(frozen=True, slots=True)
class PostedEntry:
    entry: JournalEntry
    replayed: bool  # True when the idempotency key had posted already and nothing new was written


def india_today() -> date:
    return to_india(utcnow()).date()


# --- the chart ---------------------------------------------------------------------------------------


# Account ids never change once an account exists, so the vend path looks them up once per process.
# Ids seen in a transaction are remembered only when it commits: a rolled-back account must not linger.
_account_ids: dict[tuple[uuid.UUID, str, str], uuid.UUID] = {}
_SEEN_KEY = "citygas_ledger_accounts_seen"


@event.listens_for(Session, "after_commit")
def _remember_accounts(session: Session) -> None:
    seen = session.info.pop(_SEEN_KEY, None)
    if seen:
        _account_ids.update(seen)


@event.listens_for(Session, "after_soft_rollback")
def _forget_accounts(session: Session, _previous_transaction: Any) -> None:
    # Any rollback, a savepoint's too: forgetting costs one query later; remembering wrongly costs a vend.
    session.info.pop(_SEEN_KEY, None)


def account_id_for(session: Session, code: AccountCode, party: str | uuid.UUID | None = None) -> uuid.UUID:
    """The id of `account_for`'s account, without a query once this process has seen it committed."""
    key = (current_tenant(session), code.value, _party_key(CHART[code].party, party))
    known = _account_ids.get(key)
    if known is not None:
        return known
    account_id = account_for(session, code, party).id
    session.info.setdefault(_SEEN_KEY, {})[key] = account_id
    return account_id


def ensure_chart(session: Session) -> dict[AccountCode, LedgerAccount]:
    """The tenant's book and every tenant-wide account of the chart, created where missing. Sub-accounts
    (per customer, agent or state) are created on first use by `account_for`."""
    _book(session, lock=False)
    return {code: account_for(session, code) for code, spec in CHART.items() if spec.party is Party.NONE}


def account_for(session: Session, code: AccountCode, party: str | uuid.UUID | None = None) -> LedgerAccount:
    """The account of `code` (for `party` where the chart keeps sub-accounts), created on first use.
    Two transactions creating the same account race on the unique key; the loser reads the winner's."""
    spec = CHART[code]
    party_key = _party_key(spec.party, party)
    query = select(LedgerAccount).where(LedgerAccount.code == code.value, LedgerAccount.party == party_key)
    found = session.execute(query).scalar_one_or_none()
    if found is not None:
        return found
    _book(session, lock=False)
    account_id = uuid7()
    values = {
        "id": account_id,
        "tenant_id": current_tenant(session),
        "code": code.value,
        "party": party_key,
        "name": spec.name if not party_key else f"{spec.name} — {party_key}",
        "kind": spec.kind.value,
        "created_at": utcnow(),
    }
    if _insert_once(session, LedgerAccount, values, ["tenant_id", "code", "party"]):
        _insert_once(
            session,
            AccountBalance,
            {
                "account_id": account_id,
                "tenant_id": values["tenant_id"],
                "balance_paise": 0,
                "posting_count": 0,
            },
            ["account_id"],
        )
        record(
            session,
            action="ledger_account.create",
            entity_type="ledger_account",
            entity_id=str(account_id),
            after={k: str(v) for k, v in values.items()},
        )
    return session.execute(query).scalar_one()


def _insert_once(session: Session, model: type[Base], values: dict[str, Any], unique: list[str]) -> bool:
    """INSERT .. ON CONFLICT DO NOTHING on a unique key: True if this call inserted the row. A concurrent
    transaction inserting the same key makes this one wait for its outcome (both databases), and no
    error is raised, so the caller's transaction stays usable without a savepoint."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = cast(Table, model.__table__)
    # RETURNING says whether a row went in; rowcount is -1 for this statement under psycopg.
    key = next(iter(table.primary_key.columns))
    statement = insert(table).values(**values).on_conflict_do_nothing(index_elements=unique).returning(key)
    return session.execute(statement).first() is not None


def _party_key(kind: Party, party: str | uuid.UUID | None) -> str:
    if kind is Party.NONE:
        if party not in (None, ""):
            raise ValidationFailed("this account is kept for the whole tenant, not per party")
        return ""
    if party is None or party == "":
        raise ValidationFailed(f"this account is kept per {kind.value}: say which one")
    key = str(party).strip()
    if len(key) > 64:
        raise ValidationFailed("a sub-account party is at most 64 characters")
    return key


def get_account(session: Session, code: AccountCode, party: str | uuid.UUID | None = None) -> LedgerAccount:
    key = _party_key(CHART[code].party, party)
    found = session.execute(
        select(LedgerAccount).where(LedgerAccount.code == code.value, LedgerAccount.party == key)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no {code.value} account{' for ' + key if key else ''}")
    return found


def get_balance(session: Session, code: AccountCode, party: str | uuid.UUID | None = None) -> int:
    """An account's balance as people read it (a liability's credit balance is positive); 0 if unused."""
    key = _party_key(CHART[code].party, party)
    signed = session.execute(
        select(AccountBalance.balance_paise)
        .join(LedgerAccount, LedgerAccount.id == AccountBalance.account_id)
        .where(LedgerAccount.code == code.value, LedgerAccount.party == key)
    ).scalar_one_or_none()
    return in_normal_terms(CHART[code].kind, signed or 0)


def get_signed_balance(session: Session, account_id: uuid.UUID) -> int:
    """Debit-positive balance of one account, from the derived balance table."""
    value = session.execute(
        select(AccountBalance.balance_paise).where(AccountBalance.account_id == account_id)
    ).scalar_one_or_none()
    if value is None:
        raise NotFound(f"no ledger account {account_id}")
    return int(value)


def list_entry_lines(session: Session, entry_id: uuid.UUID) -> list[Line]:
    rows = session.execute(
        select(Posting.account_id, Posting.amount_paise)
        .where(Posting.entry_id == entry_id)
        .order_by(Posting.line_no)
    ).all()
    return [
        Line(account_id, Side.DEBIT if amount > 0 else Side.CREDIT, abs(amount))
        for account_id, amount in rows
    ]


def get_entry_by_key(session: Session, idempotency_key: str) -> JournalEntry | None:
    return session.execute(
        select(JournalEntry).where(JournalEntry.idempotency_key == idempotency_key)
    ).scalar_one_or_none()


# --- posting -----------------------------------------------------------------------------------------


def post_entry(
    session: Session,
    *,
    idempotency_key: str,
    reference: str,
    kind: str,
    lines: Sequence[Line],
    effective_date: date | None = None,
    memo: str = "",
    reverses_id: uuid.UUID | None = None,
) -> PostedEntry:
    """Post a balanced entry, exactly once per idempotency key.

    Refused, with nothing written: an unbalanced entry (`UnbalancedEntry`), an unknown account, a date in
    a closed period (`PeriodClosed`), and a key already used for different lines (`IdempotencyConflict`).
    A retry with the same key and lines returns the first entry with `replayed=True`, also when the first
    attempt is still in flight in another transaction (the unique key makes the retry wait for it).
    """
    check_balanced(lines)
    key = idempotency_key.strip()
    if not key or len(key) > 120:
        raise ValidationFailed("an idempotency key is 1–120 characters")
    if not reference.strip() or len(reference) > 120:
        raise ValidationFailed("a ledger entry reference is 1–120 characters")
    existing = get_entry_by_key(session, key)
    if existing is not None:
        return _replay(session, existing, lines)
    effective = effective_date or india_today()
    closed = _book(session, lock=True).closed_through
    if closed is not None and effective <= closed:
        raise PeriodClosed(
            f"the books are closed through {closed.isoformat()}; post on a later date",
            closed_through=closed.isoformat(),
        )
    deltas = net_by_account(lines)
    known = set(session.execute(select(LedgerAccount.id).where(LedgerAccount.id.in_(list(deltas)))).scalars())
    if missing := set(deltas) - known:
        raise ValidationFailed(f"unknown ledger account(s): {', '.join(sorted(map(str, missing)))}")

    entry_id = uuid7()
    values: dict[str, Any] = {
        "id": entry_id,
        "tenant_id": current_tenant(session),
        "idempotency_key": key,
        "reference": reference.strip(),
        "kind": kind,
        "memo": memo,
        "effective_date": effective,
        "posted_at": utcnow(),
        "reverses_id": reverses_id,
    }
    # The unique key decides between concurrent retries: the loser waits for the winner's commit and
    # then replays its entry.
    if not _insert_once(session, JournalEntry, values, ["tenant_id", "idempotency_key"]):
        winner = get_entry_by_key(session, key)
        if winner is None:  # the winner rolled back between our insert and this read; the caller retries
            raise Conflict(f"a concurrent posting with idempotency key {key} is in doubt; try again")
        return _replay(session, winner, lines)
    entry = session.get(JournalEntry, entry_id)
    if entry is None:  # pragma: no cover - we have just inserted it in this transaction
        raise RuntimeError("the inserted ledger entry is not visible")
    record(
        session,
        action="ledger_entry.create",
        entity_type="ledger_entry",
        entity_id=str(entry_id),
        after={
            **{k: v if isinstance(v, str | int | type(None)) else str(v) for k, v in values.items()},
            "lines": [[str(line.account_id), line.signed_paise] for line in lines],
        },
    )

    session.add_all(
        Posting(
            id=uuid7(),
            entry_id=entry.id,
            account_id=line.account_id,
            line_no=n,
            amount_paise=line.signed_paise,
        )
        for n, line in enumerate(lines, start=1)
    )
    counts: dict[uuid.UUID, int] = {}
    for line in lines:
        counts[line.account_id] = counts.get(line.account_id, 0) + 1
    # A conditional increment, never read-modify-write; rows are locked in account-id order so two
    # entries touching the same accounts queue instead of deadlocking on PostgreSQL.
    for account_id in sorted(deltas):
        _add_to_balance(session, account_id, deltas[account_id], counts[account_id])
    session.flush()
    return PostedEntry(entry, replayed=False)


def _add_to_balance(session: Session, account_id: uuid.UUID, delta: int, count: int) -> None:
    updated = session.execute(
        update(AccountBalance)
        .where(AccountBalance.account_id == account_id)
        .values(
            balance_paise=AccountBalance.balance_paise + delta,
            posting_count=AccountBalance.posting_count + count,
        )
        .returning(AccountBalance.account_id)
        .execution_options(synchronize_session=False)
    ).first()
    if updated is None:
        # An account made outside `account_for` has no balance row yet; rebuild would create it too.
        session.add(AccountBalance(account_id=account_id, balance_paise=delta, posting_count=count))
        session.flush()


def _replay(session: Session, existing: JournalEntry, lines: Sequence[Line]) -> PostedEntry:
    if not same_lines(list_entry_lines(session, existing.id), lines):
        raise IdempotencyConflict(
            f"idempotency key {existing.idempotency_key} was used for another entry ({existing.reference})",
            entry_id=str(existing.id),
        )
    return PostedEntry(existing, replayed=True)


def reverse_entry(
    session: Session, entry_id: uuid.UUID, *, reason: str, effective_date: date | None = None
) -> PostedEntry:
    """Cancel an entry with its mirror image, dated today (or `effective_date`) so a closed period stays
    as it was reported. Reversing twice returns the first reversal."""
    original = session.get(JournalEntry, entry_id)
    if original is None:
        raise NotFound(f"no ledger entry {entry_id}")
    if not reason.strip():
        raise ValidationFailed("say why the entry is reversed")
    return post_entry(
        session,
        idempotency_key=f"reversal:{entry_id}",
        reference=f"reversal of {original.reference}"[:120],
        kind="reversal",
        lines=reversal_of(list_entry_lines(session, entry_id)),
        effective_date=effective_date,
        memo=reason.strip()[:500],
        reverses_id=entry_id,
    )


# --- the period close --------------------------------------------------------------------------------


def _book(session: Session, *, lock: bool) -> LedgerBook:
    query = select(LedgerBook)
    if lock:
        # FOR SHARE: postings do not block each other, but a close (an UPDATE of this row) waits for
        # every posting in flight, and postings that start after it see the new date. SQLite's
        # database-wide write lock gives the same order.
        query = query.with_for_update(read=True)
    found = session.execute(query).scalar_one_or_none()
    if found is not None:
        return found
    _insert_once(
        session,
        LedgerBook,
        {"id": uuid7(), "tenant_id": current_tenant(session), "closed_through": None, "closed_at": None},
        ["tenant_id"],
    )
    return session.execute(query).scalar_one()


def close_period(session: Session, until: date) -> LedgerBook:
    """Close the books through `until`: afterwards nothing is posted on or before that date. A period
    closes once it is over (never today or later), and a closed period never reopens."""
    if until >= india_today():
        raise ValidationFailed(f"{until.isoformat()} is not over yet; a period closes after its last day")
    book = _book(session, lock=False)
    session.refresh(book, with_for_update=True)
    if book.closed_through is not None and until < book.closed_through:
        raise Conflict(
            f"the books are closed through {book.closed_through.isoformat()}; a closed period does not reopen"
        )
    before = book.closed_through
    book.closed_through = until
    book.closed_at = utcnow()
    session.flush()
    record(
        session,
        action="ledger_book.close",
        entity_type="ledger_book",
        entity_id=str(book.id),
        before={"closed_through": before.isoformat() if before else None},
        after={"closed_through": until.isoformat()},
    )
    return book


def get_closed_through(session: Session) -> date | None:
    book = session.execute(select(LedgerBook)).scalar_one_or_none()
    return book.closed_through if book is not None else None


# --- rebuild -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BalanceDifference:
    tenant_id: uuid.UUID
    account_id: uuid.UUID
    code: str
    party: str
    stored_paise: int | None  # None: the balance row was missing
    derived_paise: int
    stored_count: int | None
    derived_count: int


@dataclass
class RebuildReport:
    tenants: int = 0
    accounts: int = 0
    differences: list[BalanceDifference] = field(default_factory=list)
    unbalanced_entries: list[tuple[uuid.UUID, uuid.UUID, int]] = field(default_factory=list)
    repaired: bool = False

    @property
    def ok(self) -> bool:
        return not self.differences and not self.unbalanced_entries


def rebuild_balances(db: Database, *, repair: bool = True, chunk_size: int = 1000) -> RebuildReport:
    """Recompute every account balance from the postings, report each difference, and (with `repair`)
    overwrite the stored balance with the derived one. Also reports entries whose lines do not sum to
    zero (tenant, entry, sum), which no code path can write and only tampering explains.

    Safe while vends run: each chunk of balance rows is locked (in account-id order, like postings)
    before its postings are summed, so a posting either committed before the sum or adds its delta
    after the repair."""
    report = RebuildReport(repaired=repair)
    with db.system(read_only=True) as uow:
        tenant_ids = sorted(uow.session.execute(select(Tenant.id)).scalars())
    for tenant_id in tenant_ids:
        report.tenants += 1
        after: uuid.UUID | None = None
        while True:
            with db.unit_of_work(tenant=tenant_id, read_only=not repair) as uow:
                done, after = _rebuild_chunk(uow.session, tenant_id, after, chunk_size, report, repair=repair)
                if repair:
                    uow.commit()
            if done:
                break
        with db.unit_of_work(tenant=tenant_id, read_only=True) as uow:
            rows = uow.session.execute(
                select(Posting.entry_id, func.sum(Posting.amount_paise))
                .group_by(Posting.entry_id)
                .having(func.sum(Posting.amount_paise) != 0)
            ).all()
            report.unbalanced_entries.extend((tenant_id, entry_id, int(total)) for entry_id, total in rows)
    return report


def _rebuild_chunk(
    session: Session,
    tenant_id: uuid.UUID,
    after: uuid.UUID | None,
    chunk_size: int,
    report: RebuildReport,
    *,
    repair: bool,
) -> tuple[bool, uuid.UUID | None]:
    query = select(LedgerAccount).order_by(LedgerAccount.id).limit(chunk_size)
    if after is not None:
        query = query.where(LedgerAccount.id > after)
    accounts = list(session.execute(query).scalars())
    if not accounts:
        return True, after
    ids = [a.id for a in accounts]
    balances_query = (
        select(AccountBalance).where(AccountBalance.account_id.in_(ids)).order_by(AccountBalance.account_id)
    )
    if repair:
        balances_query = balances_query.with_for_update()
    stored = {b.account_id: b for b in session.execute(balances_query).scalars()}
    derived = {
        account_id: (int(total), int(count))
        for account_id, total, count in session.execute(
            select(Posting.account_id, func.sum(Posting.amount_paise), func.count())
            .where(Posting.account_id.in_(ids))
            .group_by(Posting.account_id)
        ).all()
    }
    for account in accounts:
        report.accounts += 1
        total, count = derived.get(account.id, (0, 0))
        row = stored.get(account.id)
        if row is not None and row.balance_paise == total and row.posting_count == count:
            continue
        report.differences.append(
            BalanceDifference(
                tenant_id=tenant_id,
                account_id=account.id,
                code=account.code,
                party=account.party,
                stored_paise=row.balance_paise if row is not None else None,
                derived_paise=total,
                stored_count=row.posting_count if row is not None else None,
                derived_count=count,
            )
        )
        if repair:
            if row is None:
                session.add(AccountBalance(account_id=account.id, balance_paise=total, posting_count=count))
            else:
                row.balance_paise = total
                row.posting_count = count
    session.flush()
    return len(accounts) < chunk_size, ids[-1]


def account_kind(account: LedgerAccount) -> AccountKind:
    return AccountKind(account.kind)


# --- posting recipes the vend path uses ----------------------------------------------------------------


def post_topup(
    session: Session,
    *,
    idempotency_key: str,
    reference: str,
    customer_id: uuid.UUID,
    state: str,
    source: AccountCode,
    source_party: str | uuid.UUID | None = None,
    allocation: Allocation,
    split: GasSplit,
    rounding_paise: int = 0,
    effective_date: date | None = None,
) -> PostedEntry:
    """The entry of one top-up: the money arrives in `source` (a clearing account, or the agent's float),
    the waterfall's deductions settle the customer's receivables, VAT goes to the state, and the gas value
    becomes the customer's prepaid credit (a liability until the gas is burnt). `rounding_paise` is what
    the token carries beyond the gas value (STS amounts round up), given by the CGD."""
    if split.gross_paise != allocation.gas_credit_paise:
        raise ValidationFailed("the gas split must be of the allocation's gas credit")
    if rounding_paise < 0:
        raise ValidationFailed("token rounding is never negative: a token carries at least what was paid")
    account = partial(account_id_for, session)
    lines = nonzero_lines(
        (Side.DEBIT, account(source, source_party), allocation.amount_paise),
        (Side.DEBIT, account(AccountCode.TOKEN_ROUNDING), rounding_paise),
        (Side.CREDIT, account(AccountCode.DEBT_RECEIVABLE, customer_id), allocation.debt_paise),
        (
            Side.CREDIT,
            account(AccountCode.INSTALMENT_RECEIVABLE, customer_id),
            allocation.instalment_paise,
        ),
        (Side.CREDIT, account(AccountCode.CHARGES_RECEIVABLE, customer_id), allocation.fixed_charge_paise),
        (Side.CREDIT, account(AccountCode.VAT_PAYABLE, state), split.vat_paise),
        (
            Side.CREDIT,
            account(AccountCode.CUSTOMER_CREDIT, customer_id),
            split.gas_value_paise + rounding_paise,
        ),
    )
    return post_entry(
        session,
        idempotency_key=idempotency_key,
        reference=reference,
        kind="topup",
        lines=lines,
        effective_date=effective_date,
    )


def post_gas_used(
    session: Session,
    *,
    idempotency_key: str,
    reference: str,
    customer_id: uuid.UUID,
    value_paise: int,
    effective_date: date | None = None,
) -> PostedEntry:
    """Burnt gas turns prepaid credit into revenue (from readings or the meter's reported credit)."""
    lines = [
        debit(account_for(session, AccountCode.CUSTOMER_CREDIT, customer_id).id, value_paise),
        credit(account_for(session, AccountCode.GAS_REVENUE).id, value_paise),
    ]
    return post_entry(
        session,
        idempotency_key=idempotency_key,
        reference=reference,
        kind="gas_used",
        lines=lines,
        effective_date=effective_date,
    )
