"""Pure rules of settlement: reading a settlement report (CSV), deciding each line's outcome, and the
entry a settlement posts. No database, no web.

Accepted columns (header names, any order, case-insensitive; others are ignored):

| column | required | meaning |
|---|---|---|
| `settlement_id` | yes | the gateway's settlement (one bank credit); a file may hold several |
| `payment_id` or `entity_id` | yes | the payment the line settles (`payment_id` wins when both are filled) |
| `amount` | yes | gross amount of the payment, **whole paise** (a decimal point is refused) |
| `fee` | no (0) | what the gateway kept, whole paise, **tax included** (as Razorpay reports it) |
| `tax` | no (0) | the GST part of `fee`, whole paise, recorded for information |
| `settled_at` | yes | when the money was settled: ISO 8601 (without an offset it is IST) or Unix seconds |
| `type` | no (`payment`) | `payment` lines are matched and posted; others are recorded, not posted |
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")
MAX_LINES = 200_000  # a day's settlement of a large CGD is tens of thousands of lines


class SettlementSource(StrEnum):
    """Who settles: the payment gateway (online and UPI vends) or the BBPS operating unit."""

    GATEWAY = "gateway"
    BBPS = "bbps"

    @property
    def channels(self) -> tuple[str, ...]:
        return ("online", "upi") if self is SettlementSource.GATEWAY else ("bbps",)


class LineOutcome(StrEnum):
    MATCHED = "matched"  # our vend, same amount
    AMOUNT_MISMATCH = "amount_mismatch"  # our vend, another amount
    EXTRA = "extra"  # settled, but we know no such payment
    DUPLICATE = "duplicate"  # settled already in an earlier settlement
    NOT_A_PAYMENT = "not_a_payment"  # a refund, adjustment or transfer line: recorded, not matched or posted


class ReportInvalid(ValueError):
    """The file cannot be read as a settlement report; `problems` says where, line by line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "; ".join(problems[:20]) + (f" (and {len(problems) - 20} more)" if len(problems) > 20 else "")
        )
        self.problems = problems


@dataclass(frozen=True)
class ReportLine:
    line_no: int  # the line of the file, header = 1
    settlement_id: str
    payment_id: str
    kind: str
    amount_paise: int
    fee_paise: int
    tax_paise: int
    settled_at: datetime


def _paise(text: str, column: str, line_no: int, problems: list[str], *, required: bool) -> int:
    value = text.strip()
    if not value:
        if required:
            problems.append(f"line {line_no}: {column} is empty")
        return 0
    if not value.lstrip("-").isdigit():
        hint = " — amounts are whole paise (₹500 is 50000)" if "." in value else ""
        problems.append(f"line {line_no}: {column} {value!r} is not whole paise{hint}")
        return 0
    amount = int(value)
    if amount < 0:
        problems.append(f"line {line_no}: {column} {value} is negative")
        return 0
    return amount


def _moment(text: str, line_no: int, problems: list[str]) -> datetime:
    value = text.strip()
    try:
        if value.isdigit():
            return datetime.fromtimestamp(int(value), tz=UTC)
        parsed = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        problems.append(f"line {line_no}: settled_at {value!r} is neither ISO 8601 nor Unix seconds")
        return datetime.fromtimestamp(0, tz=UTC)
    if parsed.tzinfo is None:  # the gateway's dashboard exports show Indian time without an offset
        parsed = parsed.replace(tzinfo=IST)
    return parsed.astimezone(UTC)


def read_settlement_report(text: str) -> list[ReportLine]:
    """Every line of the report, or `ReportInvalid` listing every problem (then nothing is imported)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = {name.strip().lower(): name for name in (reader.fieldnames or [])}
    problems: list[str] = []
    missing = [c for c in ("settlement_id", "amount", "settled_at") if c not in header]
    if "payment_id" not in header and "entity_id" not in header:
        missing.append("payment_id (or entity_id)")
    if missing:
        raise ReportInvalid([f"the report has no column {', '.join(missing)}"])

    def cell(row: dict[str | None, str | None], column: str) -> str:
        name = header.get(column)
        return (row.get(name) or "") if name is not None else ""

    lines: list[ReportLine] = []
    seen: dict[str, int] = {}
    for line_no, row in enumerate(reader, start=2):
        if line_no - 1 > MAX_LINES:
            raise ReportInvalid([f"the report has more than {MAX_LINES} lines; split it by settlement"])
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank line
        payment_id = cell(row, "payment_id").strip() or cell(row, "entity_id").strip()
        settlement_id = cell(row, "settlement_id").strip()
        if not payment_id or len(payment_id) > 64:
            problems.append(f"line {line_no}: payment_id is empty or longer than 64 characters")
        if not settlement_id or len(settlement_id) > 64:
            problems.append(f"line {line_no}: settlement_id is empty or longer than 64 characters")
        kind = (cell(row, "type").strip().lower() or "payment")[:16]
        if kind == "payment" and payment_id in seen:
            first = seen[payment_id]
            problems.append(
                f"line {line_no}: payment {payment_id} is settled twice in this file (line {first})"
            )
        seen.setdefault(payment_id, line_no)
        amount = _paise(cell(row, "amount"), "amount", line_no, problems, required=True)
        fee = _paise(cell(row, "fee"), "fee", line_no, problems, required=False)
        tax = _paise(cell(row, "tax"), "tax", line_no, problems, required=False)
        if tax > fee:
            problems.append(f"line {line_no}: tax {tax} is more than the fee {fee} it is part of")
        if fee > amount:
            problems.append(f"line {line_no}: fee {fee} is more than the amount {amount}")
        lines.append(
            ReportLine(
                line_no=line_no,
                settlement_id=settlement_id,
                payment_id=payment_id,
                kind=kind,
                amount_paise=amount,
                fee_paise=fee,
                tax_paise=tax,
                settled_at=_moment(cell(row, "settled_at"), line_no, problems),
            )
        )
    if problems:
        raise ReportInvalid(problems)
    if not lines:
        raise ReportInvalid(["the report has no lines"])
    return lines


def outcome_of(line: ReportLine, *, our_amount: int | None, settled_before: bool) -> LineOutcome:
    if line.kind != "payment":
        return LineOutcome.NOT_A_PAYMENT
    if settled_before:
        return LineOutcome.DUPLICATE
    if our_amount is None:
        return LineOutcome.EXTRA
    return LineOutcome.MATCHED if our_amount == line.amount_paise else LineOutcome.AMOUNT_MISMATCH


@dataclass(frozen=True)
class SettlementTotals:
    """The entry of one settlement: Dr bank (net), Dr gateway_fees (fee) / Cr clearing (what we booked for
    the payments it settles), and the rest — extra, duplicate, or mismatched money — to suspense, where a
    person must clear it. gross = net + fee = clearing + suspense."""

    gross_paise: int
    fee_paise: int
    tax_paise: int
    net_paise: int
    clearing_paise: int
    suspense_paise: int  # positive: money we cannot place (credit suspense); negative: short-settled


def settlement_totals(lines: Iterable[tuple[ReportLine, LineOutcome, int | None]]) -> SettlementTotals:
    gross = fee = tax = clearing = 0
    for line, outcome, our_amount in lines:
        if outcome is LineOutcome.NOT_A_PAYMENT:
            continue
        gross += line.amount_paise
        fee += line.fee_paise
        tax += line.tax_paise
        if outcome in (LineOutcome.MATCHED, LineOutcome.AMOUNT_MISMATCH) and our_amount is not None:
            clearing += our_amount
    return SettlementTotals(gross, fee, tax, gross - fee, clearing, gross - clearing)


def india_day(moment: datetime) -> str:
    return moment.astimezone(IST).date().isoformat()
