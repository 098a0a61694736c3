"""Settlement use cases: import a settlement report (idempotent per settlement id), match each line to our
vends, post the bank credit; read the daily collections per channel and the agent float reconciliation.
Nothing here commits; the page does, once."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.orm import Session

from citygas.ledger.models import JournalEntry, LedgerAccount, Posting
from citygas.ledger.rules import AccountCode, Side, nonzero_lines
from citygas.ledger.service import account_for, post_entry
from citygas.payments.settlement.models import Settlement, SettlementLine
from citygas.payments.settlement.rules import (
    IST,
    LineOutcome,
    ReportInvalid,
    ReportLine,
    SettlementSource,
    outcome_of,
    read_settlement_report,
    settlement_totals,
)
from citygas.platform.errors import Conflict, NotFound, ValidationFailed
from citygas.platform.time import utcnow
from citygas.vending.models import Vend

CLEARING: dict[SettlementSource, AccountCode] = {
    SettlementSource.GATEWAY: AccountCode.GATEWAY_CLEARING,
    SettlementSource.BBPS: AccountCode.BBPS_CLEARING,
}
CHUNK = 500  # identifiers per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


class SettlementReportInvalid(ValidationFailed):
    code = "settlement_report_invalid"


class SettlementConflict(Conflict):
    code = "settlement_conflict"


@dataclass(frozen=True)
class ImportedSettlement:
    settlement: Settlement
    replayed: bool  # True: imported before with the same lines; nothing changed


@dataclass(frozen=True)
class ImportResult:
    settlements: list[ImportedSettlement] = field(default_factory=list)


def _content_hash(lines: Sequence[ReportLine]) -> str:
    canonical = sorted(
        (ln.payment_id, ln.kind, ln.amount_paise, ln.fee_paise, ln.tax_paise, ln.settled_at.isoformat())
        for ln in lines
    )
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _our_vends(session: Session, source: SettlementSource, payment_ids: Sequence[str]) -> dict[str, Vend]:
    """Our vends by the payer side's reference: the gateway's payment id, or the BBPS transaction ref."""
    found: dict[str, Vend] = {}
    for chunk in _chunks(payment_ids):
        for vend in session.execute(
            select(Vend).where(Vend.channel.in_(source.channels), Vend.payment_reference.in_(chunk))
        ).scalars():
            found[vend.payment_reference] = vend
    return found


def _settled_before(session: Session, source: SettlementSource, payment_ids: Sequence[str]) -> set[str]:
    done: set[str] = set()
    for chunk in _chunks(payment_ids):
        done.update(
            session.execute(
                select(SettlementLine.payment_id)
                .join(Settlement, Settlement.id == SettlementLine.settlement_id)
                .where(
                    Settlement.source == source.value,
                    SettlementLine.kind == "payment",
                    SettlementLine.payment_id.in_(chunk),
                )
            ).scalars()
        )
    return done


def get_settlement(session: Session, settlement_pk: str) -> Settlement:
    try:
        found = session.get(Settlement, uuid.UUID(settlement_pk))
    except ValueError:
        found = None
    if found is None:
        raise NotFound("no such settlement")
    return found


def list_settlements(session: Session, *, limit: int = 100) -> list[Settlement]:
    return list(
        session.execute(select(Settlement).order_by(Settlement.settled_at.desc()).limit(limit)).scalars()
    )


def list_settlement_lines(session: Session, settlement: Settlement) -> list[SettlementLine]:
    return list(
        session.execute(
            select(SettlementLine)
            .where(SettlementLine.settlement_id == settlement.id)
            .order_by(SettlementLine.line_no)
        ).scalars()
    )


def do_import_settlement_report(
    session: Session,
    *,
    text: str,
    source: SettlementSource,
    file_name: str = "",
    imported_by: str,
    now: datetime | None = None,
) -> ImportResult:
    """Import every settlement of a report. Each is imported once: the same settlement again (same lines)
    changes nothing; the same settlement id with other lines is refused (`settlement_conflict`) and so is a
    report that cannot be read (`settlement_report_invalid`, every problem listed) — in both cases nothing
    of the file is written."""
    now = now or utcnow()
    try:
        lines = read_settlement_report(text)
    except ReportInvalid as exc:
        raise SettlementReportInvalid(str(exc), problems=exc.problems) from exc
    groups: dict[str, list[ReportLine]] = defaultdict(list)
    for line in lines:
        groups[line.settlement_id].append(line)
    result = ImportResult()
    for settlement_id, group in groups.items():
        result.settlements.append(
            _import_one(
                session,
                source=source,
                settlement_id=settlement_id,
                lines=group,
                file_name=file_name[:200],
                imported_by=imported_by,
                now=now,
            )
        )
    return result


def _existing(
    session: Session, source: SettlementSource, settlement_id: str, digest: str
) -> Settlement | None:
    found = session.execute(
        select(Settlement).where(Settlement.source == source.value, Settlement.settlement_id == settlement_id)
    ).scalar_one_or_none()
    if found is not None and found.content_sha256 != digest:
        raise SettlementConflict(
            f"settlement {settlement_id} was imported already with other lines; nothing was imported. "
            "Ask for a corrected report under a new settlement id, or correct by a journal entry.",
            settlement=str(found.id),
        )
    return found


def _import_one(
    session: Session,
    *,
    source: SettlementSource,
    settlement_id: str,
    lines: list[ReportLine],
    file_name: str,
    imported_by: str,
    now: datetime,
) -> ImportedSettlement:
    digest = _content_hash(lines)
    if (found := _existing(session, source, settlement_id, digest)) is not None:
        return ImportedSettlement(found, replayed=True)
    payment_ids = [ln.payment_id for ln in lines if ln.kind == "payment"]
    ours = _our_vends(session, source, payment_ids)
    before = _settled_before(session, source, payment_ids)
    decided: list[tuple[ReportLine, LineOutcome, Vend | None]] = []
    for ln in lines:
        vend = ours.get(ln.payment_id) if ln.kind == "payment" else None
        outcome = outcome_of(
            ln, our_amount=vend.amount_paise if vend else None, settled_before=ln.payment_id in before
        )
        decided.append((ln, outcome, vend))
    totals = settlement_totals((ln, o, v.amount_paise if v else None) for ln, o, v in decided)
    settled_at = max(ln.settled_at for ln in lines)

    entry_id = None
    if totals.gross_paise:
        posted = post_entry(
            session,
            # The key makes a concurrent import of the same settlement wait for the first and replay it.
            idempotency_key=f"settlement:{source.value}:{settlement_id}",
            reference=f"settlement {settlement_id}"[:120],
            kind="settlement",
            lines=_entry_lines(
                session,
                source,
                totals.net_paise,
                totals.fee_paise,
                totals.clearing_paise,
                totals.suspense_paise,
            ),
            effective_date=settled_at.astimezone(IST).date(),
            memo=f"{source.value} settlement {settlement_id}: {len(lines)} lines",
        )
        if posted.replayed and (found := _existing(session, source, settlement_id, digest)) is not None:
            return ImportedSettlement(found, replayed=True)
        entry_id = posted.entry.id

    counts: dict[LineOutcome, int] = defaultdict(int)
    for _, outcome, _ in decided:
        counts[outcome] += 1
    settlement = Settlement(
        source=source.value,
        settlement_id=settlement_id,
        content_sha256=digest,
        file_name=file_name,
        settled_at=settled_at,
        line_count=len(lines),
        matched_count=counts[LineOutcome.MATCHED],
        mismatch_count=counts[LineOutcome.AMOUNT_MISMATCH],
        extra_count=counts[LineOutcome.EXTRA],
        duplicate_count=counts[LineOutcome.DUPLICATE],
        other_count=counts[LineOutcome.NOT_A_PAYMENT],
        gross_paise=totals.gross_paise,
        fee_paise=totals.fee_paise,
        tax_paise=totals.tax_paise,
        net_paise=totals.net_paise,
        clearing_paise=totals.clearing_paise,
        suspense_paise=totals.suspense_paise,
        ledger_entry_id=entry_id,
        imported_at=now,
        imported_by=imported_by[:200],
    )
    session.add(settlement)
    session.flush()
    session.add_all(
        SettlementLine(
            settlement_id=settlement.id,
            line_no=ln.line_no,
            payment_id=ln.payment_id,
            kind=ln.kind,
            amount_paise=ln.amount_paise,
            fee_paise=ln.fee_paise,
            tax_paise=ln.tax_paise,
            settled_at=ln.settled_at,
            outcome=outcome.value,
            vend_id=vend.id if vend else None,
            our_amount_paise=vend.amount_paise if vend else None,
        )
        for ln, outcome, vend in decided
    )
    session.flush()
    return ImportedSettlement(settlement, replayed=False)


def _entry_lines(
    session: Session, source: SettlementSource, net: int, fee: int, clearing: int, suspense: int
) -> list[Any]:
    """Dr bank (net), Dr gateway_fees / Cr clearing; the rest to suspense, on the side that balances."""
    account = account_for
    return nonzero_lines(
        (Side.DEBIT, account(session, AccountCode.BANK).id, net),
        (Side.DEBIT, account(session, AccountCode.GATEWAY_FEES).id, fee),
        (Side.CREDIT, account(session, CLEARING[source]).id, clearing),
        (
            Side.CREDIT if suspense > 0 else Side.DEBIT,
            account(session, AccountCode.SUSPENSE).id,
            abs(suspense),
        ),
    )


# --- what is paid to us and not settled --------------------------------------------------------------


def default_cutoff(session: Session, source: SettlementSource) -> date | None:
    """Settlement runs T+2: by default a vend is missing if it was paid two days or more before the
    latest settlement's day and no settlement carried it."""
    latest = session.execute(
        select(func.max(Settlement.settled_at)).where(Settlement.source == source.value)
    ).scalar_one_or_none()
    if latest is None:
        return None
    return latest.astimezone(IST).date() - timedelta(days=2)


def list_unsettled(
    session: Session, *, source: SettlementSource, through: date, limit: int = 500
) -> list[Vend]:
    """Vends of the source's channels paid on or before `through` (India date) that no imported settlement
    has matched: money we vended for that has not reached the bank."""
    settled = exists().where(
        SettlementLine.payment_id == Vend.payment_reference,
        SettlementLine.outcome.in_([LineOutcome.MATCHED.value, LineOutcome.AMOUNT_MISMATCH.value]),
        SettlementLine.tenant_id == Vend.tenant_id,
    )
    return list(
        session.execute(
            select(Vend)
            .where(
                Vend.channel.in_(source.channels),
                Vend.created_at < _ist_midnight(through + timedelta(days=1)),
                ~settled,
            )
            .order_by(Vend.created_at)
            .limit(limit)
        ).scalars()
    )


# --- daily collections per channel -------------------------------------------------------------------


def _ist_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=IST).astimezone(UTC)


def _ist_day(session: Session, column: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("Asia/Kolkata", column))
    # SQLite holds UTC as text; India has had no daylight saving since 1945, so +5:30 is exact.
    return func.date(column, "+330 minutes")


@dataclass(frozen=True)
class CollectionRow:
    day: date
    channel: str
    count: int
    amount_paise: int


def list_daily_collections(session: Session, *, first: date, last: date) -> list[CollectionRow]:
    """Count and amount of vends per channel per India day, from the vend table."""
    if last < first:
        raise ValidationFailed("the last day is before the first")
    if (last - first).days > 366:
        raise ValidationFailed("ask for at most a year at a time")
    day = _ist_day(session, Vend.created_at).label("day")
    rows = session.execute(
        select(day, Vend.channel, func.count(), func.coalesce(func.sum(Vend.amount_paise), 0))
        .where(
            Vend.created_at >= _ist_midnight(first), Vend.created_at < _ist_midnight(last + timedelta(days=1))
        )
        .group_by(day, Vend.channel)
        .order_by(day, Vend.channel)
    ).all()
    return [
        CollectionRow(d if isinstance(d, date) else date.fromisoformat(str(d)), channel, int(n), int(total))
        for d, channel, n, total in rows
    ]


def collections_csv(rows: Sequence[CollectionRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["day", "channel", "count", "amount_paise"])
    for row in rows:
        writer.writerow([row.day.isoformat(), row.channel, row.count, row.amount_paise])
    return out.getvalue()


# --- agent float reconciliation ----------------------------------------------------------------------


@dataclass
class AgentFloatRow:
    """One agent's float over a period, in normal terms (what the CGD owes the agent), from the ledger,
    beside the vends the vend table records for the agent. `difference` is zero when they agree."""

    agent: str
    opening_paise: int = 0
    topups_paise: int = 0
    vends_paise: int = 0  # float spent on vends, per the ledger
    commission_paise: int = 0  # commission earned (payable, or paid into the float)
    commission_to_float_paise: int = 0
    other_paise: int = 0  # reversals and anything else that moved the float
    closing_paise: int = 0
    recorded_vend_count: int = 0
    recorded_vends_paise: int = 0  # the vend table, channel csc

    @property
    def difference_paise(self) -> int:
        return self.vends_paise - self.recorded_vends_paise


def list_agent_floats(session: Session, *, first: date, last: date) -> list[AgentFloatRow]:
    if last < first:
        raise ValidationFailed("the last day is before the first")
    rows: dict[str, AgentFloatRow] = {}

    def row(agent: str) -> AgentFloatRow:
        return rows.setdefault(agent, AgentFloatRow(agent))

    codes = [AccountCode.AGENT_FLOAT.value, AccountCode.COMMISSION_PAYABLE.value]
    in_period = and_(JournalEntry.effective_date >= first, JournalEntry.effective_date <= last)
    period_flag = case((in_period, 1), else_=0)
    debit_flag = case((Posting.amount_paise > 0, 1), else_=0)
    for code, party, kind, is_period, is_debit, total in session.execute(
        select(
            LedgerAccount.code,
            LedgerAccount.party,
            JournalEntry.kind,
            period_flag,
            debit_flag,
            func.sum(Posting.amount_paise),
        )
        .join(Posting, Posting.account_id == LedgerAccount.id)
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(LedgerAccount.code.in_(codes), JournalEntry.effective_date <= last)
        .group_by(LedgerAccount.code, LedgerAccount.party, JournalEntry.kind, period_flag, debit_flag)
    ).all():
        amount = -int(total)  # both are liabilities: a credit raises what is owed to the agent
        r = row(party)
        is_commission = "commission" in kind
        if code == AccountCode.COMMISSION_PAYABLE.value:
            if is_period and is_commission:
                r.commission_paise += amount
            continue
        if not is_period:
            r.opening_paise += amount
        elif kind == "topup" and is_debit:
            r.vends_paise += -amount
        elif is_commission:
            r.commission_paise += amount
            r.commission_to_float_paise += amount
        elif kind != "reversal" and not is_debit:
            r.topups_paise += amount
        else:
            r.other_paise += amount
    for agent, count, total in session.execute(
        select(Vend.source_party, func.count(), func.coalesce(func.sum(Vend.amount_paise), 0))
        .where(
            Vend.channel == "csc",
            Vend.created_at >= _ist_midnight(first),
            Vend.created_at < _ist_midnight(last + timedelta(days=1)),
        )
        .group_by(Vend.source_party)
    ).all():
        r = row(agent or "")
        r.recorded_vend_count, r.recorded_vends_paise = int(count), int(total)
    for r in rows.values():
        r.closing_paise = (
            r.opening_paise + r.topups_paise + r.commission_to_float_paise + r.other_paise - r.vends_paise
        )
    return [rows[k] for k in sorted(rows)]


def agent_floats_csv(rows: Sequence[AgentFloatRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "agent",
            "opening_paise",
            "topups_paise",
            "vends_paise",
            "commission_paise",
            "commission_to_float_paise",
            "other_paise",
            "closing_paise",
            "recorded_vend_count",
            "recorded_vends_paise",
            "difference_paise",
        ]
    )
    for r in rows:
        writer.writerow(
            [
                r.agent,
                r.opening_paise,
                r.topups_paise,
                r.vends_paise,
                r.commission_paise,
                r.commission_to_float_paise,
                r.other_paise,
                r.closing_paise,
                r.recorded_vend_count,
                r.recorded_vends_paise,
                r.difference_paise,
            ]
        )
    return out.getvalue()
