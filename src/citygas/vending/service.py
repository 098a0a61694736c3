"""The vend: payment confirmed → checks → waterfall → ledger → tokens → receipt, in ONE database transaction.

Exactly once per idempotency key. The key is claimed first (`vend_claim`, INSERT … ON CONFLICT DO NOTHING):
a concurrent retry waits on that row until the first attempt commits, then finds its vend and returns it;
if the first attempt crashed, its transaction rolled back with the claim, the TID, the receipt number and
the ledger entry, and the retry vends afresh. Nothing of a vend is ever half-written.

`do_vends` never commits: the channel that received the money commits its own rows and the vend together.
It vends a batch (the API writes the vends that arrive together in one transaction, `vending.batching`);
`do_vend` is a batch of one, and every channel goes through it.

Fast by design (see docs/vending.md, "Performance"): a batch costs a statement per kind of row, not per
vend — what the vends read comes in three (claims, the customers with meters, models and keys; then
today's vends, balances, instalment plan, rate and VAT for them all), and each kind of row is written in
one; the rows every vend of a tenant shares are taken last, so they are held for the fewest round trips:
the balance slices of tenant-wide accounts, then the receipt number counter, then (at commit) the audit
chain head.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NamedTuple, cast

from sqlalchemy import String, Table, Uuid, and_, bindparam, column, delete, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, make_transient_to_detached

from citygas.customers.models import Customer
from citygas.ledger.models import AccountBalance, LedgerAccount
from citygas.ledger.rules import CHART, AccountCode, in_normal_terms
from citygas.ledger.service import Topup, is_sharded, post_topups
from citygas.meters.models import Meter, MeterModel, VendingKey
from citygas.meters.service import allocate_tids_for, decoder_key_for, decoder_parameters
from citygas.notifications import ports as notifications
from citygas.platform.audit import record_created
from citygas.platform.bulk import insert_rows
from citygas.platform.context import on_behalf_of, request_id_of
from citygas.platform.errors import Conflict, DomainError, NotFound
from citygas.platform.ids import uuid7
from citygas.platform.numbers import NumberKind, take_numbers
from citygas.platform.outbox import emit_many
from citygas.platform.tenancy import ChargeArea, GeographicalArea, current_tenant, tenant_filtered
from citygas.platform.time import INDIA, utcnow
from citygas.sts import (
    AmountConvention,
    DecoderKey,
    SoftwareKeyVault,
    build_key_change_set_from_vault,
    group_token,
    issue_metered_credit,
    issue_set_tariff_rate,
    next_base_date,
)
from citygas.tariffs.models import GasTariff, InstalmentPlan, TaxRate
from citygas.tariffs.rules import (
    Allocation,
    AmountOutOfRange,
    GasSplit,
    TaxKind,
    allocate_topup,
    gas_value_for,
    instalment_due,
)
from citygas.tariffs.service import get_gas_quote, terms_of
from citygas.vending.models import Vend, VendClaim
from citygas.vending.rules import DEFAULT_LIMITS, Channel, TokenKind, VendLimits, VendRequest

MAX_RATE_FIELD = 0xFFFF  # SetTariffRate carries the rate in paise per SCM in 16 bits (citygas convention)

SOURCE_ACCOUNT: dict[Channel, AccountCode] = {
    Channel.ONLINE: AccountCode.GATEWAY_CLEARING,
    Channel.UPI: AccountCode.GATEWAY_CLEARING,
    Channel.BBPS: AccountCode.BBPS_CLEARING,
    Channel.CSC: AccountCode.AGENT_FLOAT,
    Channel.B2B: AccountCode.BANK,
}


class VendRefused(DomainError):
    """A vend that cannot happen; nothing was written. `code` says which rule refused it."""

    status = 422
    title = "The top-up cannot be made"

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.code = code


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"


@dataclass(frozen=True)
class VendOutcome:
    vend: Vend
    replayed: bool  # True: this key had vended already; nothing new was written
    # The rows the vend read, for `vend_body` without reading them again (None on a replay).
    customer: Customer | None = field(default=None, compare=False, repr=False)
    meter: Meter | None = field(default=None, compare=False, repr=False)


INSTALLED = ("installed", "commissioned", "active", "suspended", "faulty")
RECEIVABLES = (
    AccountCode.DEBT_RECEIVABLE,
    AccountCode.CHARGES_RECEIVABLE,
    AccountCode.INSTALMENT_RECEIVABLE,
)
CUSTOMER_ACCOUNTS = (*RECEIVABLES, AccountCode.CUSTOMER_CREDIT)
assert not any(is_sharded(code) for code in CUSTOMER_ACCOUNTS)  # their balance is the one row read below


class Price(NamedTuple):
    rate_paise_per_scm: int
    state: str
    vat_bp: int


@dataclass(frozen=True)
class VendContext:
    """What the checks, the waterfall and the pricing read, in one statement."""

    vends_today: int
    paid_today_paise: int
    receivable_paise: dict[AccountCode, int]  # in normal terms, 0 where the account does not exist yet
    account_ids: dict[AccountCode, uuid.UUID]  # the customer's accounts that exist
    plan_id: uuid.UUID | None
    price: Price | None  # None: no rate or VAT in force (or no state): the slow path says which


# Crash tests set this to raise at a named step; production never does.
checkpoint: Callable[[str], None] = lambda _step: None  # noqa: E731


@dataclass(frozen=True)
class Deferred:
    """A request a batch could not take (its key or its customer is in the batch already), with nothing
    written for it: vend it after the batch commits, on its own."""

    why: str


VendResult = VendOutcome | DomainError | Deferred


@dataclass(frozen=True)
class _Slot:
    """One request of a batch: where its result goes, and the id its audit rows carry."""

    index: int
    request: VendRequest
    request_id: str | None


@dataclass
class _Passed:
    """A request that passed the checks, with what they read and decided; the tokens come after."""

    slot: _Slot
    customer: Customer
    meter: Meter
    model: MeterModel
    key_row: VendingKey
    context: VendContext
    price: Price
    allocation: Allocation
    split: GasSplit
    tokens: list[dict[str, Any]] = field(default_factory=list)
    rounding: int = 0


def do_vend(
    session: Session,
    request: VendRequest,
    *,
    master_key: bytes,
    now: datetime | None = None,
    limits: VendLimits = DEFAULT_LIMITS,
) -> VendOutcome:
    """One vend: a batch of one. Raises what refuses it; the caller rolls back (or its savepoint)."""
    (result,) = do_vends(session, [request], master_key=master_key, now=now, limits=limits)
    if isinstance(result, DomainError):
        raise result
    assert isinstance(result, VendOutcome)  # one request is never deferred
    return result


def do_vends(
    session: Session,
    requests: Sequence[VendRequest],
    *,
    master_key: bytes,
    now: datetime | None = None,
    limits: VendLimits = DEFAULT_LIMITS,
    request_ids: Sequence[str | None] | None = None,
) -> list[VendResult]:
    """Vend several requests of the session's tenant in the caller's transaction: the one vend path.

    Each request gets its own result, in order: its vend (new or replayed), the domain error that refused
    it (nothing of it written: its claim is withdrawn), or `Deferred`. The checks come first, for each
    request on its own; then the writes of all the vends that passed, together, a statement per kind of
    row rather than per vend. An error in the writes is raised for the whole batch, whose caller rolls it
    back and takes the requests one at a time. `request_ids` name each request in its audit rows."""
    now = now or utcnow()
    ids = list(request_ids) if request_ids is not None else [request_id_of(session)] * len(requests)
    results: list[VendResult | None] = [None] * len(requests)
    slots = _claimed(session, _admitted(requests, ids, results), results, now)
    checkpoint("claimed")
    passed = _checked(session, slots, results, limits, now)
    checkpoint("priced")
    if passed:
        _make_tokens(session, passed, master_key, now)
        checkpoint("tokens")
        _record(session, passed, results, now)
    for slot_result in results:
        assert slot_result is not None
    return cast(list[VendResult], results)


def _admitted(
    requests: Sequence[VendRequest], ids: Sequence[str | None], results: list[VendResult | None]
) -> list[_Slot]:
    """The well-formed requests, each key once (a repeat waits for the batch)."""
    slots: list[_Slot] = []
    keys: set[str] = set()
    for n, request in enumerate(requests):
        try:
            _check_request(request)
        except DomainError as exc:
            results[n] = exc
            continue
        if request.idempotency_key in keys:
            results[n] = Deferred("the same key is in this batch")
            continue
        keys.add(request.idempotency_key)
        slots.append(_Slot(n, request, ids[n]))
    return slots


def _claimed(
    session: Session, slots: list[_Slot], results: list[VendResult | None], now: datetime
) -> list[_Slot]:
    """Claim the keys (one statement, in key order so that two batches never wait on each other in a
    circle); a key claimed before is answered with its vend, or refused if the request differs."""
    if not slots:
        return slots
    slots = sorted(slots, key=lambda slot: slot.request.idempotency_key)
    tenant = current_tenant(session)
    rows = [
        {
            "tenant_id": tenant,
            "idempotency_key": slot.request.idempotency_key,
            "fingerprint": slot.request.fingerprint(),
            "claimed_at": now,
        }
        for slot in slots
    ]
    claimed = set(insert_rows(session, _table(VendClaim), rows, _claim_shape).scalars())
    taken = [slot for slot in slots if slot.request.idempotency_key not in claimed]
    if taken:
        keys = [slot.request.idempotency_key for slot in taken]
        vends = {
            vend.idempotency_key: vend
            for vend in session.execute(select(Vend).where(Vend.idempotency_key.in_(keys))).scalars()
        }
        for slot in taken:
            vend = vends[slot.request.idempotency_key]
            if vend.fingerprint != slot.request.fingerprint():
                results[slot.index] = IdempotencyConflict(
                    "this idempotency key was used for a different top-up; use a new key for a new top-up"
                )
            else:
                results[slot.index] = VendOutcome(vend, replayed=True)
    return [slot for slot in slots if slot.request.idempotency_key in claimed]


def _checked(
    session: Session,
    slots: list[_Slot],
    results: list[VendResult | None],
    limits: VendLimits,
    now: datetime,
) -> list[_Passed]:
    """The rules, for each claimed request on its own: its meter, amount, daily limits, price and
    waterfall. A refused or deferred request's claim is withdrawn, so that nothing of it stays."""
    withdrawn: list[str] = []

    def refuse(slot: _Slot, why: DomainError | Deferred) -> None:
        results[slot.index] = why
        withdrawn.append(slot.request.idempotency_key)

    found = _resolve_all(session, [slot.request for slot in slots]) if slots else {}
    resolved: list[tuple[_Slot, Resolved]] = []
    customers: set[uuid.UUID] = set()
    for slot in slots:
        try:
            target = _resolved(slot.request, found)
            _check_meter(target[1])
            _check_amount(slot.request.amount_paise, limits)
        except DomainError as exc:
            refuse(slot, exc)
            continue
        if target[0].id in customers:  # one vend per customer in a batch: limits, TIDs, balances
            refuse(slot, Deferred("the same customer is in this batch"))
            continue
        customers.add(target[0].id)
        resolved.append((slot, target))
    contexts = read_contexts(session, [target[0] for _, target in resolved], now)
    passed: list[_Passed] = []
    for slot, target in resolved:
        try:
            passed.append(_priced(session, slot, target, contexts[target[0].id], limits, now))
        except DomainError as exc:
            refuse(slot, exc)
    if withdrawn:
        session.execute(_withdraw_statement(), {"tenant": current_tenant(session), "keys": withdrawn})
    return passed


def _priced(
    session: Session,
    slot: _Slot,
    target: Resolved,
    context: VendContext,
    limits: VendLimits,
    now: datetime,
) -> _Passed:
    """The daily limits, the price and the waterfall of one request."""
    customer, meter, model, key_row = target
    amount = slot.request.amount_paise
    _check_daily(context, amount, limits)
    price = context.price or _slow_price(session, customer, now)
    allocation = _allocate(session, context, amount, limits)
    split = gas_value_for(allocation.gas_credit_paise, price.rate_paise_per_scm, price.vat_bp)
    passed = _Passed(slot, customer, meter, model, key_row, context, price, allocation, split)
    if _needs_tariff(passed):
        _check_rate_field(price.rate_paise_per_scm)
    return passed


def _make_tokens(session: Session, passed: list[_Passed], master_key: bytes, now: datetime) -> None:
    """Each vend's tokens: key change first where the meter needs it, SetTariffRate if the price moved,
    then the credit, for exactly the encoded amount. The TIDs of all the vends in one statement, after
    the key changes (a rollover restarts a meter's TIDs)."""
    for slot in passed:
        if slot.meter.key_change_pending:
            with on_behalf_of(session, slot.slot.request_id):  # the meter's change is audited as its vend's
                slot.tokens.extend(_key_change_tokens(session, slot.meter, master_key))
    passed = sorted(passed, key=lambda p: p.meter.id)  # the order the meters' rows lock in
    tids = allocate_tids_for(
        session, [(slot.meter, 2 if _needs_tariff(slot) else 1) for slot in passed], now=now
    )
    for slot, its_tids in zip(passed, tids, strict=True):
        with on_behalf_of(session, slot.slot.request_id):
            _make_tokens_of(session, slot, master_key, its_tids)


def _needs_tariff(slot: _Passed) -> bool:
    """A currency meter whose rate differs from the vend's gets a SetTariffRate first."""
    return slot.model.mode == "currency" and slot.meter.tariff_on_meter != slot.price.rate_paise_per_scm


def _make_tokens_of(session: Session, slot: _Passed, master_key: bytes, tids: list[int]) -> None:
    meter, model, price, split = slot.meter, slot.model, slot.price, slot.split
    key = decoder_key_for(session, meter, master_key=master_key, key=slot.key_row)
    if _needs_tariff(slot):
        slot.tokens.append(_tariff_token(meter, key, price.rate_paise_per_scm, tids[0]))
        session.flush()  # the meter's new tariff, audited now, under this vend's request id
    credit_token, carried = _credit_token(meter, model, key, split.gas_value_paise, split.litres, tids[-1])
    slot.tokens.append(credit_token)
    if model.mode == "currency":
        slot.rounding = carried - split.gas_value_paise
    else:  # the litres the token carries beyond those paid for, at the vend's rate, given by the CGD
        slot.rounding = (carried - split.litres) * price.rate_paise_per_scm // 1000


def _record(session: Session, slots: list[_Passed], results: list[VendResult | None], now: datetime) -> None:
    """The ledger entries, the vend rows with their receipt numbers, the events and the SMS: a statement
    per kind of row. The rows every vend of the tenant shares are taken last, so they are held for the
    fewest round trips: the balance slices, then the receipt counter, then (at commit) the audit head."""
    vend_ids = [uuid7() for _ in slots]
    # The entry names the vend, not its receipt number: the number is taken after it (below), so that the
    # tenant's counter is held for as short a time as possible. The vend row links the two.
    entries = post_topups(
        session,
        [_topup_of(slot, vend_id) for slot, vend_id in zip(slots, vend_ids, strict=True)],
        effective_date=now.astimezone(INDIA).date(),
    )
    checkpoint("posted")
    receipts = take_numbers(session, NumberKind.RECEIPT, len(slots))
    rows = [
        _vend_row(session, slot, vend_id, entry.entry.id, receipt, now)
        for slot, vend_id, entry, receipt in zip(slots, vend_ids, entries, receipts, strict=True)
    ]
    insert_rows(session, _table(Vend), rows)
    events: list[tuple[str, dict[str, Any]]] = []
    for slot, row in zip(slots, rows, strict=True):
        vend = Vend(**row)
        # The row is in the database: record its audit row as the flush would, under the request's own
        # id, and make the object the session's persistent row, as if loaded.
        with on_behalf_of(session, slot.slot.request_id):
            record_created(session, vend)
        make_transient_to_detached(vend)
        session.add(vend)
        results[slot.slot.index] = VendOutcome(vend, replayed=False, customer=slot.customer, meter=slot.meter)
        events += _vend_events(slot, vend)
    checkpoint("recorded")
    emit_many(session, events)


def _topup_of(slot: _Passed, vend_id: uuid.UUID) -> Topup:
    request, customer, context, price = slot.slot.request, slot.customer, slot.context, slot.price
    return Topup(
        idempotency_key=f"vend:{request.idempotency_key}",
        reference=f"vend {vend_id}",
        customer_id=customer.id,
        state=price.state,
        source=SOURCE_ACCOUNT[request.channel],
        source_party=request.source_party,
        allocation=slot.allocation,
        split=slot.split,
        rounding_paise=slot.rounding,
        customer_accounts=context.account_ids,
        request_id=slot.slot.request_id,
    )


def _vend_row(
    session: Session,
    slot: _Passed,
    vend_id: uuid.UUID,
    entry_id: uuid.UUID,
    receipt: str,
    now: datetime,
) -> dict[str, Any]:
    request, allocation, split, price = slot.slot.request, slot.allocation, slot.split, slot.price
    return {
        "id": vend_id,
        "tenant_id": current_tenant(session),
        "idempotency_key": request.idempotency_key,
        "fingerprint": request.fingerprint(),
        "channel": request.channel.value,
        "source_party": request.source_party,
        "payment_reference": request.payment_reference,
        "receipt_number": receipt,
        "customer_id": slot.customer.id,
        "meter_id": slot.meter.id,
        "amount_paise": request.amount_paise,
        "gas_credit_paise": split.gas_value_paise + slot.rounding,
        "gas_litres": split.litres,
        "vat_paise": split.vat_paise,
        "rounding_paise": slot.rounding,
        "rate_paise_per_scm": price.rate_paise_per_scm,
        "deductions": [{"kind": kind, "amount_paise": paise} for kind, paise in allocation.deductions],
        "tokens": slot.tokens,
        "ledger_entry_id": entry_id,
        "created_at": now,
    }


def _vend_events(slot: _Passed, vend: Vend) -> list[tuple[str, dict[str, Any]]]:
    """The vend's event for the rest of the system, and the SMS with its tokens."""
    customer, meter = slot.customer, slot.meter
    tokens_text = "; ".join(group_token(t["token"]) for t in vend.tokens)
    completed = {
        "vend_id": str(vend.id),
        "receipt_number": vend.receipt_number,
        "consumer_number": customer.consumer_number,
        "channel": vend.channel,
    }
    text = f"Gas top-up {vend.receipt_number}: enter in order on meter {meter.serial}: {tokens_text}"
    return [
        ("vend.completed", completed),
        notifications.requested(channel="sms", to=customer.phone, text=text),
    ]


def _check_request(request: VendRequest) -> None:
    if isinstance(request.amount_paise, bool) or not isinstance(request.amount_paise, int):
        raise VendRefused("amount_invalid", "the amount is whole paise")
    if not request.idempotency_key or len(request.idempotency_key) > 128:
        raise VendRefused("idempotency_key_invalid", "an idempotency key of 1–128 characters is required")
    if bool(request.consumer_number) == bool(request.meter_serial):
        raise VendRefused("target_invalid", "give either a consumer number or a meter serial")
    if request.channel is Channel.CSC and not request.source_party:
        raise VendRefused("agent_missing", "a CSC vend names the agent whose float pays for it")


# The statements of the vend are built once, with bound parameters: building a statement costs more
# than running it (see docs/vending.md, "Performance").


def _claim_shape(insert: Any) -> Any:
    """The claim: INSERT … ON CONFLICT DO NOTHING, returning the keys this transaction claimed."""
    claim = _table(VendClaim)
    return insert.on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"]).returning(
        claim.c.idempotency_key
    )


@cache
def _withdraw_statement() -> Any:
    claim = _table(VendClaim)
    keys: Any = bindparam("keys", expanding=True)
    return delete(claim).where(claim.c.tenant_id == bindparam("tenant"), claim.c.idempotency_key.in_(keys))


@cache
def _resolve_statement(by: str) -> Any:
    """The customers (or meters) of a batch with their installed meters, models and vending keys,
    filtered by tenant here, by hand, on every table (`tenant_filtered`): the ORM criteria would cost
    as much as the query."""
    tenant: Any = bindparam("tenant")
    targets: Any = bindparam("targets", expanding=True)
    entities = select(Customer, Meter, MeterModel, VendingKey)
    model = and_(MeterModel.id == Meter.model_id, MeterModel.tenant_id == tenant)
    key = and_(VendingKey.id == Meter.vending_key_id, VendingKey.tenant_id == tenant)
    if by == "consumer":
        statement = (
            entities.outerjoin(
                Meter,
                and_(Meter.customer_id == Customer.id, Meter.state.in_(INSTALLED), Meter.tenant_id == tenant),
            )
            .outerjoin(MeterModel, model)
            .outerjoin(VendingKey, key)
            .where(Customer.consumer_number.in_(targets), Customer.tenant_id == tenant)
        )
    else:
        statement = (
            entities.select_from(Meter)
            .outerjoin(Customer, and_(Customer.id == Meter.customer_id, Customer.tenant_id == tenant))
            .outerjoin(MeterModel, model)
            .outerjoin(VendingKey, key)
            .where(Meter.serial.in_(targets), Meter.tenant_id == tenant)
        )
    return tenant_filtered(statement)


Found = dict[tuple[str, str], tuple[Customer, Meter | None, MeterModel | None, VendingKey | None]]


def _target(request: VendRequest) -> tuple[str, str]:
    if request.consumer_number:
        return ("consumer", request.consumer_number.strip())
    return ("meter", (request.meter_serial or "").strip().upper())


def _resolve_all(session: Session, requests: Sequence[VendRequest]) -> Found:
    """The customers and meters the requests name, with meter, model and vending key: a statement for
    those named by consumer number and one for those named by meter serial. The vending key rows are read
    along: deriving the decoder keys needs them."""
    tenant = current_tenant(session)
    found: Found = {}
    for by in ("consumer", "meter"):
        targets = sorted({t for kind, t in map(_target, requests) if kind == by})
        if not targets:
            continue
        rows = session.execute(_resolve_statement(by), {"tenant": tenant, "targets": targets})
        for customer, meter, model, key in rows:
            if by == "consumer":
                found[(by, customer.consumer_number)] = (customer, meter, model, key)
            elif customer is not None:
                found[(by, meter.serial)] = (customer, meter, model, key)
    return found


Resolved = tuple[Customer, Meter, MeterModel, VendingKey]


def _resolved(request: VendRequest, found: Found) -> Resolved:
    row = found.get(_target(request))
    if row is None:
        if request.consumer_number:
            raise NotFound(f"no customer {request.consumer_number}")
        raise NotFound(f"no installed meter {request.meter_serial}")
    customer, meter, model, key = row
    if meter is None:
        raise VendRefused("no_meter", f"customer {customer.consumer_number} has no meter installed yet")
    assert model is not None
    assert key is not None
    return customer, meter, model, key


def read_context(session: Session, customer: Customer, now: datetime) -> VendContext:
    """Today's vends of the customer, the receivables the waterfall settles, the customer's account ids,
    the active instalment plan, and the gas rate and VAT in force: one SELECT of scalar subqueries."""
    row = session.execute(
        _context_statement(),
        {
            **_day_of(session, now),
            "customer": customer.id,
            "party": str(customer.id),
            "area": customer.charge_area_id,
        },
    ).one()
    return _context_of(row)


def read_contexts(
    session: Session, customers: Sequence[Customer], now: datetime
) -> dict[uuid.UUID, VendContext]:
    """`read_context` for the customers of a batch: on PostgreSQL one SELECT for them all (the same
    subqueries, over the arrays of customers given), elsewhere one each."""
    if len(customers) < 2 or session.get_bind().dialect.name != "postgresql":
        return {customer.id: read_context(session, customer, now) for customer in customers}
    rows = session.execute(
        _contexts_statement(),
        {
            **_day_of(session, now),
            "customers": [customer.id for customer in customers],
            "parties": [str(customer.id) for customer in customers],
            "areas": [customer.charge_area_id for customer in customers],
        },
    )
    return {row[0]: _context_of(row[1:]) for row in rows}


def _day_of(session: Session, now: datetime) -> dict[str, Any]:
    midnight = now.astimezone(INDIA).replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "tenant": current_tenant(session),
        "from": midnight,
        "until": midnight + timedelta(days=1),
        "now": now,
    }


def _context_of(row: Sequence[Any]) -> VendContext:
    count, paid, *accounts = row[:10]
    plan_id, rate, state_name, vat_bp = row[10:14]
    ids: dict[AccountCode, uuid.UUID] = {}
    owed: dict[AccountCode, int] = {}
    for n, code in enumerate(CUSTOMER_ACCOUNTS):
        account_id, signed = accounts[2 * n], accounts[2 * n + 1]
        if account_id is not None:
            ids[code] = account_id
        owed[code] = in_normal_terms(CHART[code].kind, signed or 0)
    price = None
    if rate is not None and state_name is not None and vat_bp is not None:
        price = Price(int(rate), str(state_name), int(vat_bp))
    return VendContext(int(count), int(paid), owed, ids, plan_id, price)


@cache
def _context_statement() -> Any:
    """`read_context`'s statement. Core, for speed: every tenant-scoped table in it is filtered by the
    tenant here, by hand (`tenant_filtered`); the ids it is given were read through the scoped ORM."""
    columns = _context_columns(bindparam("customer"), bindparam("party"), bindparam("area"))
    return tenant_filtered(select(*columns))


@cache
def _contexts_statement() -> Any:
    """`read_contexts`' statement: the same columns, a row per customer of the arrays given (PostgreSQL)."""
    given = func.unnest(
        bindparam("customers", type_=ARRAY(Uuid())),
        bindparam("parties", type_=ARRAY(String())),
        bindparam("areas", type_=ARRAY(Uuid())),
    ).table_valued(column("customer", Uuid()), column("party", String()), column("area", Uuid()))
    given = given.render_derived(name="given")  # FROM unnest(...) AS given(customer, party, area)
    columns = _context_columns(given.c.customer, given.c.party, given.c.area)
    return tenant_filtered(select(given.c.customer, *columns).select_from(given))


def _context_columns(customer: Any, party: Any, area_id: Any) -> list[Any]:
    """The scalar subqueries of a vend's context, for the customer, party key and charge area given
    (bound parameters, or the columns of a row per customer)."""
    tenant: Any = bindparam("tenant")
    now: Any = bindparam("now")
    vend, account, balance = _table(Vend), _table(LedgerAccount), _table(AccountBalance)
    plan, tariff, tax = _table(InstalmentPlan), _table(GasTariff), _table(TaxRate)
    area, ga = _table(ChargeArea), _table(GeographicalArea)
    today = and_(
        vend.c.tenant_id == tenant,
        vend.c.customer_id == customer,
        vend.c.created_at >= bindparam("from"),
        vend.c.created_at < bindparam("until"),
    )
    columns: list[Any] = [
        select(func.count()).select_from(vend).where(today).scalar_subquery(),
        select(func.coalesce(func.sum(vend.c.amount_paise), 0)).where(today).scalar_subquery(),
    ]
    for code in CUSTOMER_ACCOUNTS:
        mine = and_(account.c.tenant_id == tenant, account.c.code == code.value, account.c.party == party)
        columns.append(select(account.c.id).where(mine).scalar_subquery())
        columns.append(
            select(balance.c.balance_paise)
            .join(account, account.c.id == balance.c.account_id)
            .where(mine, balance.c.tenant_id == tenant)
            .scalar_subquery()
        )
    state = (
        select(ga.c.state)
        .join(area, area.c.ga_id == ga.c.id)
        .where(area.c.id == area_id, area.c.tenant_id == tenant, ga.c.tenant_id == tenant)
        .correlate_except(ga, area)  # also inside the VAT subquery, to the customers' row
        .scalar_subquery()
    )
    columns += [
        select(plan.c.id)
        .where(plan.c.tenant_id == tenant, plan.c.customer_id == customer, plan.c.status == "active")
        .order_by(plan.c.created_at)
        .limit(1)
        .scalar_subquery(),
        # As tariffs.service reads them: the latest version at or before the moment.
        select(tariff.c.rate_paise_per_scm)
        .where(
            tariff.c.tenant_id == tenant,
            tariff.c.charge_area_id == area_id,
            tariff.c.effective_from <= now,
        )
        .order_by(tariff.c.effective_from.desc())
        .limit(1)
        .scalar_subquery(),
        state,
        select(tax.c.rate_bp)
        .where(
            tax.c.tenant_id == tenant,
            tax.c.tax == TaxKind.VAT.value,
            tax.c.region == state,
            tax.c.effective_from <= now,
        )
        .order_by(tax.c.effective_from.desc())
        .limit(1)
        .scalar_subquery(),
    ]
    return columns


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def _slow_price(session: Session, customer: Customer, now: datetime) -> Price:
    """The tariffs service's own reading, for its refusal (no rate or VAT in force) or an odd state name."""
    quote = get_gas_quote(session, customer.charge_area_id, now)
    return Price(quote.rate_paise_per_scm, quote.state, quote.vat_bp)


def _check_meter(meter: Meter) -> None:
    if meter.state != "active":
        raise VendRefused(
            "meter_not_active", f"meter {meter.serial} is {meter.state}; only an active meter takes credit"
        )


def _check_amount(amount: int, limits: VendLimits) -> None:
    if not limits.minimum_paise <= amount <= limits.maximum_paise:
        raise VendRefused(
            "amount_out_of_range",
            f"a top-up is between {limits.minimum_paise} and {limits.maximum_paise} paise",
            minimum_paise=limits.minimum_paise,
            maximum_paise=limits.maximum_paise,
        )


def _check_daily(context: VendContext, amount: int, limits: VendLimits) -> None:
    if context.vends_today >= limits.daily_count:
        raise VendRefused("daily_limit", f"at most {limits.daily_count} top-ups a day")
    if context.paid_today_paise + amount > limits.daily_paise:
        raise VendRefused("daily_limit", f"at most {limits.daily_paise} paise of top-ups a day")


def _allocate(session: Session, context: VendContext, amount: int, limits: VendLimits) -> Any:
    debt = context.receivable_paise[AccountCode.DEBT_RECEIVABLE]
    charges = context.receivable_paise[AccountCode.CHARGES_RECEIVABLE]
    outstanding = context.receivable_paise[AccountCode.INSTALMENT_RECEIVABLE]
    plan = session.get(InstalmentPlan, context.plan_id) if context.plan_id is not None else None
    instalment = (
        instalment_due(terms_of(plan), topup_paise=amount, outstanding_paise=outstanding) if plan else 0
    )
    try:
        return allocate_topup(
            amount,
            instalments_due=instalment,
            fixed_charges_due=charges,
            debt_due=max(debt, 0),
            minimum_paise=limits.minimum_paise,
            maximum_paise=limits.maximum_paise,
        )
    except AmountOutOfRange as exc:
        raise VendRefused("amount_out_of_range", str(exc)) from exc


def _key_change_tokens(session: Session, meter: Meter, master_key: bytes) -> list[dict[str, Any]]:
    """The key change set ahead of the vend's other tokens; the meter's registry record moves to the new key
    in the same transaction, so the credit token after it is made under the new key."""
    key_row = session.get(VendingKey, meter.vending_key_id)
    assert key_row is not None
    current = decoder_parameters(meter)
    new = dataclasses.replace(
        current,
        krn=meter.pending_krn or meter.krn,
        ti=meter.ti if meter.pending_ti is None else meter.pending_ti,
        base_date=next_base_date(meter.base_date) if meter.pending_rollover else meter.base_date,
    )
    change = build_key_change_set_from_vault(
        vault=SoftwareKeyVault(master_key, key_row.vault_blob),
        key_id=key_row.key_id,
        current=current,
        new=new,
        ken=meter.ken,
        rollover=meter.pending_rollover,
    )
    meter.krn, meter.ti, meter.base_date = new.krn, new.ti, new.base_date
    if meter.pending_rollover:
        meter.last_tid = None  # TIDs now count from the new base date
    meter.key_change_pending, meter.pending_krn, meter.pending_ti, meter.pending_rollover = (
        False,
        None,
        None,
        False,
    )
    session.flush()
    return [{"kind": TokenKind.KEY_CHANGE.value, "token": token, "tid": None} for token in change.tokens]


def _check_rate_field(rate: int) -> None:
    if not 0 < rate <= MAX_RATE_FIELD:
        raise VendRefused(
            "tariff_unrepresentable", f"a rate of {rate} paise per SCM does not fit a SetTariffRate"
        )


def _tariff_token(meter: Meter, key: DecoderKey, rate: int, tid: int) -> dict[str, Any]:
    issued = issue_set_tariff_rate(decoder_key=key, rate_field=rate, tid=tid, ken=meter.ken)
    meter.tariff_on_meter = rate
    return {"kind": TokenKind.SET_TARIFF_RATE.value, "token": issued.token, "tid": tid}


def _credit_token(
    meter: Meter, model: MeterModel, key: DecoderKey, gas_value_paise: int, litres: int, tid: int
) -> tuple[dict[str, Any], int]:
    currency = model.mode == "currency"
    convention = AmountConvention(
        model.credit_subclass, "paise" if currency else "litres", model.base_units_per_count
    )
    issued = issue_metered_credit(
        decoder_key=key,
        convention=convention,
        base_units=gas_value_paise if currency else litres,
        tid=tid,
        ken=meter.ken,
    )
    return {"kind": TokenKind.CREDIT.value, "token": issued.token, "tid": tid}, issued.carried_base_units


def get_vend(session: Session, vend_id: uuid.UUID) -> Vend:
    vend = session.get(Vend, vend_id)
    if vend is None:
        raise NotFound("no such top-up")
    return vend


def vend_body(
    session: Session, vend: Vend, *, customer: Customer | None = None, meter: Meter | None = None
) -> dict[str, Any]:
    """What an STS receipt shows, as the API returns it. Pass the vend's customer and meter where the
    caller holds them (`VendOutcome`), to save reading them again."""
    if meter is None or meter.id != vend.meter_id:
        meter = session.get(Meter, vend.meter_id)
    if customer is None or customer.id != vend.customer_id:
        customer = session.get(Customer, vend.customer_id)
    assert meter is not None
    assert customer is not None
    return {
        "vend_id": str(vend.id),
        "receipt_number": vend.receipt_number,
        "channel": vend.channel,
        "amount_paise": vend.amount_paise,
        "gas_credit_paise": vend.gas_credit_paise,
        "gas_litres": vend.gas_litres,
        "vat_paise": vend.vat_paise,
        "rate_paise_per_scm": vend.rate_paise_per_scm,
        "deductions": vend.deductions,
        "tokens": vend.tokens,
        "customer": {"consumer_number": customer.consumer_number, "name": customer.name},
        "meter": {
            "serial": meter.serial,
            "sts_meter_number": meter.sts_meter_number,
            "sgc": meter.sgc,
            "krn": meter.krn,
            "ti": meter.ti,
            "base_date": meter.base_date,
        },
        "payment_reference": vend.payment_reference,
        "created_at": vend.created_at.isoformat(),
    }
