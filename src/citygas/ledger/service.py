"""Ledger use cases: the chart, posting an entry (balanced, idempotent, append-only), reversing it, closing a
period, reading balances, and rebuilding the derived balances from the postings.

Callers pass a `Session` inside their unit of work; nothing here commits, except `rebuild_balances`,
which is a maintenance command with its own units of work.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, event, func, select
from sqlalchemy.orm import Session, make_transient_to_detached

from citygas.ledger.models import (
    AccountBalance,
    BalanceShard,
    JournalEntry,
    LedgerAccount,
    LedgerBook,
    Posting,
)
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
from citygas.platform.bulk import Shape, insert_rows
from citygas.platform.context import request_id_of
from citygas.platform.db import Base
from citygas.platform.errors import Conflict, NotFound, ValidationFailed
from citygas.platform.ids import uuid7
from citygas.platform.tenancy import Tenant, current_tenant, tenant_filtered
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


# Account ids never change once an account exists, so the vend path looks the tenant-wide ones (and an
# agent's or a state's) up once per process. Customers' accounts are not remembered here: there are
# millions, and the vend reads them with the customer anyway. Ids seen in a transaction are remembered
# only when it commits: a rolled-back account must not linger.
_account_ids: dict[tuple[uuid.UUID, str, str], uuid.UUID] = {}
_SEEN_KEY = "citygas_ledger_accounts_seen"

# The accounts every vend of a tenant posts to keep their balance in slices (`BalanceShard`).
SHARDED_PARTIES = frozenset({Party.NONE, Party.STATE})
BALANCE_SHARDS = 16
_SHARD_KEY = "citygas_ledger_shard"


def is_sharded(code: AccountCode) -> bool:
    return CHART[code].party in SHARDED_PARTIES


@event.listens_for(Session, "after_commit")
def _remember_accounts(session: Session) -> None:
    if session.in_nested_transaction():
        # A savepoint was released (SQLAlchemy fires after_commit for it too): the outer transaction may
        # still roll back, so nothing it created is known to exist yet.
        return
    session.info.pop(_SHARD_KEY, None)
    seen = session.info.pop(_SEEN_KEY, None)
    if seen:
        _account_ids.update(seen)


@event.listens_for(Session, "after_soft_rollback")
def _forget_accounts(session: Session, _previous_transaction: Any) -> None:
    # Any rollback, a savepoint's too: forgetting costs one query later; remembering wrongly costs a vend.
    session.info.pop(_SEEN_KEY, None)


def account_id_for(session: Session, code: AccountCode, party: str | uuid.UUID | None = None) -> uuid.UUID:
    """The id of `account_for`'s account (created on first use), without a query once this process has
    seen it committed (customers' accounts excepted)."""
    tenant_id = current_tenant(session)
    spec = CHART[code]
    key = (tenant_id, code.value, _party_key(spec.party, party))
    known = _account_ids.get(key)
    if known is not None:
        return known
    found = session.execute(
        select(LedgerAccount.id).where(LedgerAccount.code == code.value, LedgerAccount.party == key[2])
    ).scalar_one_or_none()
    account_id = found if found is not None else _create_account(session, code, key[2])
    if spec.party is not Party.CUSTOMER:
        session.info.setdefault(_SEEN_KEY, {})[key] = account_id
    return account_id


def _create_account(session: Session, code: AccountCode, party_key: str) -> uuid.UUID:
    """Insert the account and its balance row unless a concurrent transaction did; its id either way."""
    return _create_accounts(session, {(code, party_key): request_id_of(session)})[(code, party_key)]


AccountKey = tuple[AccountCode, str]  # code and party key


def _create_accounts(
    session: Session, wanted: Mapping[AccountKey, str | None]
) -> dict[AccountKey, uuid.UUID]:
    """`_create_account` for several accounts at once (the first top-ups of a batch's customers): one
    statement for the accounts, one for their balance rows. Each account's audit row names the request
    given for it. The ids, of the rows inserted here or by a concurrent transaction."""
    tenant_id, now = current_tenant(session), utcnow()
    rows: dict[AccountKey, dict[str, Any]] = {
        key: {
            "id": uuid7(),
            "tenant_id": tenant_id,
            "code": key[0].value,
            "party": key[1],
            "name": CHART[key[0]].name if not key[1] else f"{CHART[key[0]].name} — {key[1]}",
            "kind": CHART[key[0]].kind.value,
            "created_at": now,
        }
        for key in sorted(wanted)  # in key order: two transactions creating the same accounts queue
    }
    values = list(rows.values())
    table = cast(Table, LedgerAccount.__table__)
    inserted = set(insert_rows(session, table, values, _once(_ACCOUNT_KEY)).scalars())
    ids: dict[AccountKey, uuid.UUID] = {}
    for key, row in rows.items():
        if row["id"] not in inserted:  # a concurrent transaction created it first: its row
            ours = and_(LedgerAccount.code == key[0].value, LedgerAccount.party == key[1])
            ids[key] = session.execute(select(LedgerAccount.id).where(ours)).scalar_one()
            continue
        ids[key] = row["id"]
        record(
            session,
            request_id=wanted[key],
            action="ledger_account.create",
            entity_type="ledger_account",
            entity_id=str(row["id"]),
            after={k: str(v) for k, v in row.items()},
        )
    balances = [
        {"account_id": row["id"], "tenant_id": tenant_id, "balance_paise": 0, "posting_count": 0}
        for row in values
        if row["id"] in inserted
    ]
    if balances:
        table = cast(Table, AccountBalance.__table__)
        insert_rows(session, table, balances, _once(("account_id",)))
    return ids


_ACCOUNT_KEY = ("tenant_id", "code", "party")


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
    _create_account(session, code, party_key)
    return session.execute(query).scalar_one()


def _insert_once(session: Session, model: type[Base], values: dict[str, Any], unique: list[str]) -> bool:
    """INSERT .. ON CONFLICT DO NOTHING on a unique key: True if this call inserted the row. A concurrent
    transaction inserting the same key makes this one wait for its outcome (both databases), and no
    error is raised, so the caller's transaction stays usable without a savepoint."""
    table = cast(Table, model.__table__)
    return insert_rows(session, table, [values], _once(tuple(unique))).first() is not None


@cache
def _once(unique: tuple[str, ...]) -> Shape:
    """INSERT … ON CONFLICT (unique) DO NOTHING RETURNING the primary key: the rows that went in (rowcount
    is -1 for this statement under psycopg). One function per key, so the built statements are cached."""

    def shape(insert: Any) -> Any:
        key = next(iter(insert.table.primary_key.columns))
        return insert.on_conflict_do_nothing(index_elements=list(unique)).returning(key)

    return shape


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


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


def _with_shards(base: Any, account_id: Any) -> Any:
    """The balance (or count) column of an account's row plus its slices, as one expression."""
    column = BalanceShard.balance_paise if base.key == "balance_paise" else BalanceShard.posting_count
    shards = select(func.sum(column)).where(BalanceShard.account_id == account_id).scalar_subquery()
    return func.coalesce(base, 0) + func.coalesce(shards, 0)


def get_balance(session: Session, code: AccountCode, party: str | uuid.UUID | None = None) -> int:
    """An account's balance as people read it (a liability's credit balance is positive); 0 if unused."""
    key = _party_key(CHART[code].party, party)
    signed = session.execute(
        select(_with_shards(AccountBalance.balance_paise, LedgerAccount.id))
        .select_from(LedgerAccount)
        .outerjoin(AccountBalance, LedgerAccount.id == AccountBalance.account_id)
        .where(LedgerAccount.code == code.value, LedgerAccount.party == key)
    ).scalar_one_or_none()
    return in_normal_terms(CHART[code].kind, int(signed or 0))  # int: a sum is NUMERIC on PostgreSQL


def get_signed_balance(session: Session, account_id: uuid.UUID) -> int:
    """Debit-positive balance of one account, from the derived balance rows."""
    return _account_total(session, account_id, AccountBalance.balance_paise)


def get_posting_count(session: Session, account_id: uuid.UUID) -> int:
    """How many posting lines an account has, from the derived balance rows."""
    return _account_total(session, account_id, AccountBalance.posting_count)


def _account_total(session: Session, account_id: uuid.UUID, column: Any) -> int:
    """A balance row's column plus its slices, for one account (NotFound if there is no such account)."""
    value = session.execute(
        select(_with_shards(column, LedgerAccount.id))
        .select_from(LedgerAccount)
        .outerjoin(AccountBalance, LedgerAccount.id == AccountBalance.account_id)
        .where(LedgerAccount.id == account_id)
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
    key, reference = _checked_key_and_reference(idempotency_key, reference)
    existing = get_entry_by_key(session, key)
    if existing is not None:
        return _replay(session, existing, lines)
    effective = _open_date(session, effective_date)
    deltas = net_by_account(lines)
    rows = session.execute(
        select(LedgerAccount.id, LedgerAccount.code).where(LedgerAccount.id.in_(list(deltas)))
    )
    codes: dict[uuid.UUID, str] = {row.id: row.code for row in rows}
    if missing := set(deltas) - set(codes):
        raise ValidationFailed(f"unknown ledger account(s): {', '.join(sorted(map(str, missing)))}")
    sharded = {account_id for account_id, code in codes.items() if is_sharded(AccountCode(code))}
    return _write_entry(session, key, reference, kind, lines, effective, memo, reverses_id, sharded)


def _checked_key_and_reference(idempotency_key: str, reference: str) -> tuple[str, str]:
    key = idempotency_key.strip()
    if not key or len(key) > 120:
        raise ValidationFailed("an idempotency key is 1–120 characters")
    if not reference.strip() or len(reference) > 120:
        raise ValidationFailed("a ledger entry reference is 1–120 characters")
    return key, reference.strip()


def _open_date(session: Session, effective_date: date | None) -> date:
    """The entry's date, refused if its period is closed (the book row is share-locked until commit)."""
    effective = effective_date or india_today()
    row = session.execute(_book_lock_statement(), {"tenant": current_tenant(session)}).first()
    closed = row[0] if row is not None else _book(session, lock=True).closed_through
    if closed is not None and effective <= closed:
        raise PeriodClosed(
            f"the books are closed through {closed.isoformat()}; post on a later date",
            closed_through=closed.isoformat(),
        )
    return effective


@dataclass(frozen=True)
class _Draft:
    """An entry ready to write: its key and reference checked, its lines balanced, its date open."""

    key: str
    reference: str
    kind: str
    lines: Sequence[Line]
    effective: date
    memo: str = ""
    reverses_id: uuid.UUID | None = None
    request_id: str | None = None  # the request its audit row names (the session's own if None)


def _write_entry(
    session: Session,
    key: str,
    reference: str,
    kind: str,
    lines: Sequence[Line],
    effective: date,
    memo: str,
    reverses_id: uuid.UUID | None,
    sharded: set[uuid.UUID],
) -> PostedEntry:
    draft = _Draft(key, reference, kind, lines, effective, memo, reverses_id)
    (posted,) = _write_entries(session, [draft], sharded)
    return posted


def _write_entries(session: Session, drafts: Sequence[_Draft], sharded: set[uuid.UUID]) -> list[PostedEntry]:
    """Insert the entries (one statement), their lines (one statement) and the balance changes of them all
    (one statement each for plain rows and slices). The accounts are known to exist in the session's
    tenant; `sharded` are those among them kept in slices."""
    tenant_id = current_tenant(session)
    posted_at = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "id": uuid7(),
            "tenant_id": tenant_id,
            "idempotency_key": draft.key,
            "reference": draft.reference,
            "kind": draft.kind,
            "memo": draft.memo,
            "effective_date": draft.effective,
            "posted_at": posted_at,
            "reverses_id": draft.reverses_id,
        }
        for draft in drafts
    ]
    # The unique key decides between concurrent retries: the loser waits for the winner's commit and
    # then replays its entry.
    inserted = insert_rows(session, cast(Table, JournalEntry.__table__), rows, _once(_ENTRY_KEY)).all()
    if len(inserted) < len(rows):
        if len(rows) > 1:  # a batch is all or nothing: its caller takes the entries one at a time
            raise Conflict("an entry of this batch was posted by a concurrent transaction; try one by one")
        winner = get_entry_by_key(session, drafts[0].key)
        if winner is None:  # the winner rolled back between our insert and this read; the caller retries
            raise Conflict(
                f"a concurrent posting with idempotency key {drafts[0].key} is in doubt; try again"
            )
        return [_replay(session, winner, drafts[0].lines)]
    posted: list[PostedEntry] = []
    postings: list[dict[str, Any]] = []
    for draft, values in zip(drafts, rows, strict=True):
        # The row is in the database: hand the caller the object without reading it back.
        entry = JournalEntry(**values)
        make_transient_to_detached(entry)
        session.add(entry)
        record(
            session,
            request_id=draft.request_id,
            action="ledger_entry.create",
            entity_type="ledger_entry",
            entity_id=str(entry.id),
            after={
                **{k: v if isinstance(v, str | int | type(None)) else str(v) for k, v in values.items()},
                "lines": [[str(line.account_id), line.signed_paise] for line in draft.lines],
            },
        )
        postings += [
            {
                "id": uuid7(),
                "tenant_id": tenant_id,
                "entry_id": entry.id,
                "account_id": line.account_id,
                "line_no": n,
                "amount_paise": line.signed_paise,
            }
            for n, line in enumerate(draft.lines, start=1)
        ]
        posted.append(PostedEntry(entry, replayed=False))
    insert_rows(session, cast(Table, Posting.__table__), postings)
    _add_to_balances(session, tenant_id, [line for draft in drafts for line in draft.lines], sharded)
    return posted


_ENTRY_KEY = ("tenant_id", "idempotency_key")


@cache
def _add_to_row(key: tuple[str, ...]) -> Shape:
    """INSERT a delta, or add it to the row already there: one statement, run for many rows at once."""

    def shape(upsert: Any) -> Any:
        table = upsert.table
        return upsert.on_conflict_do_update(
            index_elements=list(key),
            set_={
                "balance_paise": table.c.balance_paise + upsert.excluded.balance_paise,
                "posting_count": table.c.posting_count + upsert.excluded.posting_count,
            },
        )

    return shape


def _add_to_balances(
    session: Session, tenant_id: uuid.UUID, lines: Sequence[Line], sharded: set[uuid.UUID]
) -> None:
    """Conditional increments, never read-modify-write, as upserts (a row missing for an account made
    outside `account_for` is created, as rebuild would). Rows are locked in account-id order so two
    entries touching the same accounts queue instead of deadlocking on PostgreSQL. Tenant-wide accounts
    take their delta into one slice, the same for all of them in this transaction, so concurrent
    vends rarely meet on a row; the slices go last, to hold their locks for the shortest time."""
    deltas = net_by_account(lines)
    counts: dict[uuid.UUID, int] = {}
    for line in lines:
        counts[line.account_id] = counts.get(line.account_id, 0) + 1
    plain = [
        {"account_id": a, "tenant_id": tenant_id, "balance_paise": deltas[a], "posting_count": counts[a]}
        for a in sorted(deltas)
        if a not in sharded
    ]
    if plain:
        insert_rows(session, cast(Table, AccountBalance.__table__), plain, _add_to_row(("account_id",)))
    if hot := [a for a in sorted(deltas) if a in sharded]:
        shard = session.info.get(_SHARD_KEY)
        if shard is None:
            shard = session.info[_SHARD_KEY] = random.randrange(BALANCE_SHARDS)  # noqa: S311 - spreading, not secrecy
        insert_rows(
            session,
            cast(Table, BalanceShard.__table__),
            [
                {
                    "account_id": a,
                    "shard": shard,
                    "tenant_id": tenant_id,
                    "balance_paise": deltas[a],
                    "posting_count": counts[a],
                }
                for a in hot
            ],
            _add_to_row(("account_id", "shard")),
        )


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


@cache
def _book_lock_statement() -> Any:
    """`_book(lock=True)`'s read of the one column a posting needs, built once; filtered by tenant here."""
    book = cast(Table, LedgerBook.__table__)
    return tenant_filtered(
        select(book.c.closed_through)
        .where(book.c.tenant_id == bindparam("tenant"))
        .with_for_update(read=True)
    )


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
    shards_query = (
        select(BalanceShard)
        .where(BalanceShard.account_id.in_(ids))
        .order_by(BalanceShard.account_id, BalanceShard.shard)
    )
    if repair:
        balances_query = balances_query.with_for_update()
        shards_query = shards_query.with_for_update()
    stored = {b.account_id: b for b in session.execute(balances_query).scalars()}
    # The slices of tenant-wide accounts count with their row; locked too, so that a posting that has
    # already added to one is waited for, and one that has not yet will add after the repair.
    sliced: dict[uuid.UUID, tuple[int, int]] = {}
    for shard in session.execute(shards_query).scalars():
        paise, count = sliced.get(shard.account_id, (0, 0))
        sliced[shard.account_id] = (paise + shard.balance_paise, count + shard.posting_count)
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
        in_slices, counted_in_slices = sliced.get(account.id, (0, 0))
        stored_total = row.balance_paise + in_slices if row is not None else None
        stored_count = row.posting_count + counted_in_slices if row is not None else None
        if stored_total == total and stored_count == count:
            continue
        report.differences.append(
            BalanceDifference(
                tenant_id=tenant_id,
                account_id=account.id,
                code=account.code,
                party=account.party,
                stored_paise=stored_total,
                derived_paise=total,
                stored_count=stored_count,
                derived_count=count,
            )
        )
        if repair:
            # The row takes what the slices do not hold, so row + slices = the postings again.
            if row is None:
                session.add(
                    AccountBalance(
                        account_id=account.id,
                        balance_paise=total - in_slices,
                        posting_count=count - counted_in_slices,
                    )
                )
            else:
                row.balance_paise = total - in_slices
                row.posting_count = count - counted_in_slices
    session.flush()
    return len(accounts) < chunk_size, ids[-1]


def account_kind(account: LedgerAccount) -> AccountKind:
    return AccountKind(account.kind)


# --- posting recipes the vend path uses ----------------------------------------------------------------


@dataclass(frozen=True)
class Topup:
    """One top-up's entry: the money arrives in `source` (a clearing account, or the agent's float), the
    waterfall's deductions settle the customer's receivables, VAT goes to the state, and the gas value
    becomes the customer's prepaid credit (a liability until the gas is burnt). `rounding_paise` is what
    the token carries beyond the gas value (STS amounts round up), given by the CGD.
    `customer_accounts` are ids of the customer's accounts the caller has read in this transaction (in
    the session's tenant); accounts not given are looked up, and created on first use."""

    idempotency_key: str
    reference: str
    customer_id: uuid.UUID
    state: str
    source: AccountCode
    allocation: Allocation
    split: GasSplit
    source_party: str | uuid.UUID | None = None
    rounding_paise: int = 0
    customer_accounts: Mapping[AccountCode, uuid.UUID] = field(default_factory=dict)
    request_id: str | None = None  # a batch of vends: the request the entry's audit rows name


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
    customer_accounts: Mapping[AccountCode, uuid.UUID] | None = None,
) -> PostedEntry:
    """The entry of one top-up (see `Topup`)."""
    topup = Topup(
        idempotency_key,
        reference,
        customer_id,
        state,
        source,
        allocation,
        split,
        source_party,
        rounding_paise,
        customer_accounts or {},
    )
    (posted,) = post_topups(session, [topup], effective_date=effective_date)
    return posted


def post_topups(
    session: Session, topups: Sequence[Topup], *, effective_date: date | None = None
) -> list[PostedEntry]:
    """The entries of several top-ups, written together (a batch of vends): all or nothing."""
    sharded: set[uuid.UUID] = set()
    drafts: list[_Draft] = []
    effective = _open_date(session, effective_date)
    opened = _open_customer_accounts(session, topups)
    for topup in topups:
        request_id = topup.request_id or request_id_of(session)
        lines = _topup_lines(session, topup, opened, sharded)
        key, reference = _checked_key_and_reference(topup.idempotency_key, topup.reference)
        drafts.append(_Draft(key, reference, "topup", lines, effective, request_id=request_id))
    # No look-up of the keys first: the vend's claim makes a retry of a top-up rare, and the unique key
    # still finds the first entry when one comes.
    return _write_entries(session, drafts, sharded)


def _open_customer_accounts(session: Session, topups: Sequence[Topup]) -> dict[AccountKey, uuid.UUID]:
    """The customers' accounts the top-ups post to that their callers did not know: looked up, and the
    missing ones created, all in a few statements."""
    wanted: dict[AccountKey, str | None] = {}
    for topup in topups:
        for _side, code, party, paise in _wanted_lines(topup):
            if paise and CHART[code].party is Party.CUSTOMER and code not in topup.customer_accounts:
                wanted[(code, str(party))] = topup.request_id or request_id_of(session)
    if not wanted:
        return {}
    tenant = current_tenant(session)
    account = cast(Table, LedgerAccount.__table__)
    found = {
        (AccountCode(code), party): account_id
        for account_id, code, party in session.execute(
            tenant_filtered(
                select(account.c.id, account.c.code, account.c.party).where(
                    account.c.tenant_id == tenant,
                    account.c.party.in_(sorted({party for _, party in wanted})),
                    account.c.code.in_(sorted({code.value for code, _ in wanted})),
                )
            )
        )
    }
    missing = {key: request_id for key, request_id in wanted.items() if key not in found}
    return found | (_create_accounts(session, missing) if missing else {})


def _wanted_lines(topup: Topup) -> tuple[tuple[Side, AccountCode, str | uuid.UUID | None, int], ...]:
    allocation, split, customer_id = topup.allocation, topup.split, topup.customer_id
    return (
        (Side.DEBIT, topup.source, topup.source_party, allocation.amount_paise),
        (Side.DEBIT, AccountCode.TOKEN_ROUNDING, None, topup.rounding_paise),
        (Side.CREDIT, AccountCode.DEBT_RECEIVABLE, customer_id, allocation.debt_paise),
        (Side.CREDIT, AccountCode.INSTALMENT_RECEIVABLE, customer_id, allocation.instalment_paise),
        (Side.CREDIT, AccountCode.CHARGES_RECEIVABLE, customer_id, allocation.fixed_charge_paise),
        (Side.CREDIT, AccountCode.VAT_PAYABLE, topup.state, split.vat_paise),
        (Side.CREDIT, AccountCode.CUSTOMER_CREDIT, customer_id, split.gas_value_paise + topup.rounding_paise),
    )


def _topup_lines(
    session: Session, topup: Topup, opened: Mapping[AccountKey, uuid.UUID], sharded: set[uuid.UUID]
) -> list[Line]:
    """The balanced lines of a top-up; adds the sharded accounts among them to `sharded`."""
    allocation, split, rounding_paise = topup.allocation, topup.split, topup.rounding_paise
    if split.gross_paise != allocation.gas_credit_paise:
        raise ValidationFailed("the gas split must be of the allocation's gas credit")
    if rounding_paise < 0:
        raise ValidationFailed("token rounding is never negative: a token carries at least what was paid")
    parts: list[tuple[Side, uuid.UUID, int]] = []
    for side, code, party, paise in _wanted_lines(topup):
        if not paise:  # no line, so no account to look up or create for it
            continue
        given = None
        if CHART[code].party is Party.CUSTOMER:
            given = topup.customer_accounts.get(code) or opened.get((code, str(party)))
        account_id = given or account_id_for(session, code, party)
        if is_sharded(code):
            sharded.add(account_id)
        parts.append((side, account_id, paise))
    lines = nonzero_lines(*parts)
    check_balanced(lines)
    return lines


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
