"""Pure double-entry rules: the chart of accounts as data, posting lines, and the balance check.

No database here (an import contract checks it): the service turns these decisions into rows.

Amounts are integer paise. A line is a debit or a credit of a positive amount; stored, a debit is a
positive signed amount and a credit a negative one, so an entry balances exactly when its signed
amounts sum to zero, and an account's balance is the sum of its signed amounts (debit-positive).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


class AccountKind(StrEnum):
    """Assets and expenses grow with debits; liabilities and income grow with credits."""

    ASSET = "asset"
    LIABILITY = "liability"
    INCOME = "income"
    EXPENSE = "expense"

    @property
    def normal_side(self) -> Side:
        return Side.DEBIT if self in (AccountKind.ASSET, AccountKind.EXPENSE) else Side.CREDIT


class Party(StrEnum):
    """Whose sub-account: the chart keeps one sub-account per customer, agent or state where it says so."""

    NONE = "none"
    CUSTOMER = "customer"
    AGENT = "agent"
    STATE = "state"


class AccountCode(StrEnum):
    CUSTOMER_CREDIT = "customer_credit"
    CUSTOMER_REFUND_PAYABLE = "customer_refund_payable"
    DEPOSIT_HELD = "deposit_held"
    CHARGES_RECEIVABLE = "charges_receivable"
    INSTALMENT_RECEIVABLE = "instalment_receivable"
    DEBT_RECEIVABLE = "debt_receivable"
    GATEWAY_CLEARING = "gateway_clearing"
    BBPS_CLEARING = "bbps_clearing"
    CSC_CLEARING = "csc_clearing"
    AGENT_FLOAT = "agent_float"
    COMMISSION_EXPENSE = "commission_expense"
    COMMISSION_PAYABLE = "commission_payable"
    GATEWAY_FEES = "gateway_fees"
    TOKEN_ROUNDING = "token_rounding"  # noqa: S105 - an account code, not a secret
    VAT_PAYABLE = "vat_payable"
    GST_PAYABLE = "gst_payable"
    GAS_REVENUE = "gas_revenue"
    SERVICE_REVENUE = "service_revenue"
    BANK = "bank"
    SUSPENSE = "suspense"


@dataclass(frozen=True, slots=True)
class AccountSpec:
    code: AccountCode
    name: str
    kind: AccountKind
    party: Party


CHART: dict[AccountCode, AccountSpec] = {
    spec.code: spec
    for spec in (
        # What the CGD owes its customers: prepaid gas not yet burnt. Income only when the gas is used.
        AccountSpec(
            AccountCode.CUSTOMER_CREDIT, "Customer prepaid credit", AccountKind.LIABILITY, Party.CUSTOMER
        ),
        AccountSpec(
            AccountCode.CUSTOMER_REFUND_PAYABLE,
            "Customer credit notes payable",
            AccountKind.LIABILITY,
            Party.CUSTOMER,
        ),
        AccountSpec(
            AccountCode.DEPOSIT_HELD, "Security deposits held", AccountKind.LIABILITY, Party.CUSTOMER
        ),
        AccountSpec(AccountCode.CHARGES_RECEIVABLE, "Charges receivable", AccountKind.ASSET, Party.CUSTOMER),
        AccountSpec(
            AccountCode.INSTALMENT_RECEIVABLE, "Instalments receivable", AccountKind.ASSET, Party.CUSTOMER
        ),
        AccountSpec(
            AccountCode.DEBT_RECEIVABLE, "Customer debt receivable", AccountKind.ASSET, Party.CUSTOMER
        ),
        AccountSpec(AccountCode.GATEWAY_CLEARING, "Payment gateway clearing", AccountKind.ASSET, Party.NONE),
        AccountSpec(AccountCode.BBPS_CLEARING, "BBPS clearing", AccountKind.ASSET, Party.NONE),
        AccountSpec(AccountCode.CSC_CLEARING, "CSC agent clearing", AccountKind.ASSET, Party.NONE),
        # Money an agent paid in advance: the CGD owes it back as vends, so it is a liability.
        AccountSpec(AccountCode.AGENT_FLOAT, "Agent float", AccountKind.LIABILITY, Party.AGENT),
        AccountSpec(AccountCode.COMMISSION_EXPENSE, "Agent commission", AccountKind.EXPENSE, Party.NONE),
        AccountSpec(AccountCode.COMMISSION_PAYABLE, "Commission payable", AccountKind.LIABILITY, Party.AGENT),
        AccountSpec(AccountCode.GATEWAY_FEES, "Payment gateway fees", AccountKind.EXPENSE, Party.NONE),
        # STS amounts round a request up to the next value the token can carry; the CGD gives that gap.
        AccountSpec(AccountCode.TOKEN_ROUNDING, "Token rounding given", AccountKind.EXPENSE, Party.NONE),
        # VAT on gas is a state levy: one sub-account per state, filed separately.
        AccountSpec(AccountCode.VAT_PAYABLE, "VAT payable", AccountKind.LIABILITY, Party.STATE),
        AccountSpec(AccountCode.GST_PAYABLE, "GST payable", AccountKind.LIABILITY, Party.NONE),
        AccountSpec(AccountCode.GAS_REVENUE, "Gas sales", AccountKind.INCOME, Party.NONE),
        AccountSpec(
            AccountCode.SERVICE_REVENUE, "Connection and service charges", AccountKind.INCOME, Party.NONE
        ),
        AccountSpec(AccountCode.BANK, "Bank", AccountKind.ASSET, Party.NONE),
        # Money that arrived and cannot be placed yet; it must be cleared to zero by a person.
        AccountSpec(AccountCode.SUSPENSE, "Suspense", AccountKind.ASSET, Party.NONE),
    )
}


class LedgerRuleError(ValueError):
    """A posting that double-entry bookkeeping does not allow."""


class UnbalancedEntry(LedgerRuleError):
    """Debits and credits differ: nothing is written."""

    def __init__(self, debits: int, credits: int) -> None:
        super().__init__(
            f"the entry does not balance: debits {debits} paise, credits {credits} paise "
            f"(difference {debits - credits})"
        )
        self.debits = debits
        self.credits = credits


@dataclass(frozen=True, slots=True)
class Line:
    account_id: uuid.UUID
    side: Side
    amount_paise: int

    def __post_init__(self) -> None:
        # bool is an int in Python; True paise is a bug, not one paisa.
        if isinstance(self.amount_paise, bool) or not isinstance(self.amount_paise, int):
            raise LedgerRuleError(f"a posting amount is whole paise, not {self.amount_paise!r}")
        if self.amount_paise <= 0:
            raise LedgerRuleError(
                f"a posting amount is positive paise, not {self.amount_paise}; use the other side instead"
            )

    @property
    def signed_paise(self) -> int:
        return self.amount_paise if self.side is Side.DEBIT else -self.amount_paise


def debit(account_id: uuid.UUID, amount_paise: int) -> Line:
    return Line(account_id, Side.DEBIT, amount_paise)


def credit(account_id: uuid.UUID, amount_paise: int) -> Line:
    return Line(account_id, Side.CREDIT, amount_paise)


def nonzero_lines(*candidates: tuple[Side, uuid.UUID, int]) -> list[Line]:
    """Lines for the amounts that are not zero: a waterfall often leaves some parts empty."""
    return [Line(account, side, amount) for side, account, amount in candidates if amount != 0]


def check_balanced(lines: Sequence[Line]) -> None:
    """Every entry has at least two lines and its debits equal its credits, or it is refused."""
    if len(lines) < 2:
        raise LedgerRuleError("an entry needs at least two lines: one debit and one credit")
    debits = sum(line.amount_paise for line in lines if line.side is Side.DEBIT)
    credits = sum(line.amount_paise for line in lines if line.side is Side.CREDIT)
    if debits != credits:
        raise UnbalancedEntry(debits, credits)


def reversal_of(lines: Iterable[Line]) -> list[Line]:
    """The lines that cancel an entry: each line on the other side. Postings are never edited."""
    return [
        Line(line.account_id, Side.CREDIT if line.side is Side.DEBIT else Side.DEBIT, line.amount_paise)
        for line in lines
    ]


def net_by_account(lines: Iterable[Line]) -> dict[uuid.UUID, int]:
    """The signed change of each account's balance (debit-positive) that the lines make."""
    deltas: dict[uuid.UUID, int] = {}
    for line in lines:
        deltas[line.account_id] = deltas.get(line.account_id, 0) + line.signed_paise
    return deltas


def same_lines(a: Iterable[Line], b: Iterable[Line]) -> bool:
    """Two entries post the same thing (order of lines aside): how an idempotent retry is recognised."""

    def key(line: Line) -> tuple[str, str, int]:
        return (str(line.account_id), line.side.value, line.amount_paise)

    return sorted(map(key, a)) == sorted(map(key, b))


def in_normal_terms(kind: AccountKind, signed_balance: int) -> int:
    """A debit-positive balance as people read it: a liability's credit balance shows positive."""
    return signed_balance if kind.normal_side is Side.DEBIT else -signed_balance
