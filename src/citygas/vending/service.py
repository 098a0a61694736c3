"""The vend: payment confirmed → checks → waterfall → ledger → tokens → receipt, in ONE database transaction.

Exactly once per idempotency key. The key is claimed first (`vend_claim`, INSERT … ON CONFLICT DO NOTHING):
a concurrent retry waits on that row until the first attempt commits, then finds its vend and returns it;
if the first attempt crashed, its transaction rolled back with the claim, the TID, the receipt number and
the ledger entry, and the retry vends afresh. Nothing of a vend is ever half-written.

`do_vend` never commits: the channel that received the money commits its own rows and the vend together.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.ledger.rules import AccountCode
from citygas.ledger.service import get_balance, post_topup
from citygas.meters.models import Meter, MeterModel, VendingKey
from citygas.meters.service import allocate_tid, decoder_key_for, decoder_parameters
from citygas.notifications import ports as notifications
from citygas.platform.errors import Conflict, DomainError, NotFound
from citygas.platform.numbers import NumberKind, next_number
from citygas.platform.outbox import emit
from citygas.platform.tenancy import current_tenant
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
from citygas.tariffs.rules import AmountOutOfRange, allocate_topup, gas_value_for, instalment_due
from citygas.tariffs.service import get_active_instalment_plan, get_gas_quote, terms_of
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


# Crash tests set this to raise at a named step; production never does.
checkpoint: Callable[[str], None] = lambda _step: None  # noqa: E731


def do_vend(
    session: Session,
    request: VendRequest,
    *,
    master_key: bytes,
    now: datetime | None = None,
    limits: VendLimits = DEFAULT_LIMITS,
) -> VendOutcome:
    now = now or utcnow()
    _check_request(request)
    replay = _claim(session, request, now)
    if replay is not None:
        return replay
    checkpoint("claimed")
    customer, meter, model = _resolve(session, request)
    _check_meter(meter)
    _check_limits(session, customer, request.amount_paise, limits, now)
    quote = get_gas_quote(session, customer.charge_area_id, now)
    allocation = _allocate(session, customer, request.amount_paise, limits)
    split = gas_value_for(allocation.gas_credit_paise, quote.rate_paise_per_scm, quote.vat_bp)
    checkpoint("priced")

    tokens: list[dict[str, Any]] = []
    if meter.key_change_pending:
        tokens.extend(_key_change_tokens(session, meter, master_key))
    key = decoder_key_for(session, meter, master_key=master_key)
    if model.mode == "currency" and meter.tariff_on_meter != quote.rate_paise_per_scm:
        tokens.append(_tariff_token(session, meter, key, quote.rate_paise_per_scm, now))
    credit_token, carried = _credit_token(
        session, meter, model, key, split.gas_value_paise, split.litres, now
    )
    tokens.append(credit_token)
    if model.mode == "currency":
        rounding = carried - split.gas_value_paise
    else:  # the litres the token carries beyond those paid for, at the vend's rate, given by the CGD
        rounding = (carried - split.litres) * quote.rate_paise_per_scm // 1000
    checkpoint("tokens")

    receipt = next_number(session, NumberKind.RECEIPT)
    entry = post_topup(
        session,
        idempotency_key=f"vend:{request.idempotency_key}",
        reference=receipt,
        customer_id=customer.id,
        state=quote.state,
        source=SOURCE_ACCOUNT[request.channel],
        source_party=request.source_party,
        allocation=allocation,
        split=split,
        rounding_paise=rounding,
        effective_date=now.astimezone(INDIA).date(),
    )
    checkpoint("posted")
    vend = Vend(
        idempotency_key=request.idempotency_key,
        fingerprint=request.fingerprint(),
        channel=request.channel.value,
        source_party=request.source_party,
        payment_reference=request.payment_reference,
        receipt_number=receipt,
        customer_id=customer.id,
        meter_id=meter.id,
        amount_paise=request.amount_paise,
        gas_credit_paise=split.gas_value_paise + rounding,
        gas_litres=split.litres,
        vat_paise=split.vat_paise,
        rounding_paise=rounding,
        rate_paise_per_scm=quote.rate_paise_per_scm,
        deductions=[{"kind": kind, "amount_paise": paise} for kind, paise in allocation.deductions],
        tokens=tokens,
        ledger_entry_id=entry.entry.id,
        created_at=now,
    )
    session.add(vend)
    session.flush()
    checkpoint("recorded")
    emit(
        session,
        "vend.completed",
        {
            "vend_id": str(vend.id),
            "receipt_number": receipt,
            "consumer_number": customer.consumer_number,
            "channel": request.channel.value,
        },
    )
    tokens_text = "; ".join(group_token(t["token"]) for t in tokens)
    notifications.request(
        session,
        channel="sms",
        to=customer.phone,
        text=f"Gas top-up {receipt}: enter in order on meter {meter.serial}: {tokens_text}",
    )
    return VendOutcome(vend, replayed=False)


def _check_request(request: VendRequest) -> None:
    if isinstance(request.amount_paise, bool) or not isinstance(request.amount_paise, int):
        raise VendRefused("amount_invalid", "the amount is whole paise")
    if not request.idempotency_key or len(request.idempotency_key) > 128:
        raise VendRefused("idempotency_key_invalid", "an idempotency key of 1–128 characters is required")
    if bool(request.consumer_number) == bool(request.meter_serial):
        raise VendRefused("target_invalid", "give either a consumer number or a meter serial")
    if request.channel is Channel.CSC and not request.source_party:
        raise VendRefused("agent_missing", "a CSC vend names the agent whose float pays for it")


def _claim(session: Session, request: VendRequest, now: datetime) -> VendOutcome | None:
    """Claim the key, or return the vend it already made (or refuse a different request under it)."""
    tenant_id = current_tenant(session)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    claimed = session.execute(
        insert(VendClaim)
        .values(
            tenant_id=tenant_id,
            idempotency_key=request.idempotency_key,
            fingerprint=request.fingerprint(),
            claimed_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
        .returning(VendClaim.idempotency_key)
    ).scalar_one_or_none()
    if claimed is not None:
        return None
    vend = session.execute(select(Vend).where(Vend.idempotency_key == request.idempotency_key)).scalar_one()
    if vend.fingerprint != request.fingerprint():
        raise IdempotencyConflict(
            "this idempotency key was used for a different top-up; use a new key for a new top-up"
        )
    return VendOutcome(vend, replayed=True)


def _resolve(session: Session, request: VendRequest) -> tuple[Customer, Meter, MeterModel]:
    if request.consumer_number:
        customer = session.execute(
            select(Customer).where(Customer.consumer_number == request.consumer_number.strip())
        ).scalar_one_or_none()
        if customer is None:
            raise NotFound(f"no customer {request.consumer_number}")
        meter = session.execute(
            select(Meter).where(
                Meter.customer_id == customer.id,
                Meter.state.in_(["installed", "commissioned", "active", "suspended", "faulty"]),
            )
        ).scalar_one_or_none()
        if meter is None:
            raise VendRefused("no_meter", f"customer {customer.consumer_number} has no meter installed yet")
    else:
        meter = session.execute(
            select(Meter).where(Meter.serial == (request.meter_serial or "").strip().upper())
        ).scalar_one_or_none()
        if meter is None or meter.customer_id is None:
            raise NotFound(f"no installed meter {request.meter_serial}")
        found = session.get(Customer, meter.customer_id)
        assert found is not None
        customer = found
    model = session.get(MeterModel, meter.model_id)
    assert model is not None
    return customer, meter, model


def _check_meter(meter: Meter) -> None:
    if meter.state != "active":
        raise VendRefused(
            "meter_not_active", f"meter {meter.serial} is {meter.state}; only an active meter takes credit"
        )


def _check_limits(
    session: Session, customer: Customer, amount: int, limits: VendLimits, now: datetime
) -> None:
    if not limits.minimum_paise <= amount <= limits.maximum_paise:
        raise VendRefused(
            "amount_out_of_range",
            f"a top-up is between {limits.minimum_paise} and {limits.maximum_paise} paise",
            minimum_paise=limits.minimum_paise,
            maximum_paise=limits.maximum_paise,
        )
    local = now.astimezone(INDIA)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    count, total = session.execute(
        select(func.count(), func.coalesce(func.sum(Vend.amount_paise), 0)).where(
            Vend.customer_id == customer.id,
            Vend.created_at >= midnight,
            Vend.created_at < midnight + timedelta(days=1),
        )
    ).one()
    if count >= limits.daily_count:
        raise VendRefused("daily_limit", f"at most {limits.daily_count} top-ups a day")
    if total + amount > limits.daily_paise:
        raise VendRefused("daily_limit", f"at most {limits.daily_paise} paise of top-ups a day")


def _allocate(session: Session, customer: Customer, amount: int, limits: VendLimits) -> Any:
    debt = get_balance(session, AccountCode.DEBT_RECEIVABLE, customer.id)
    charges = get_balance(session, AccountCode.CHARGES_RECEIVABLE, customer.id)
    outstanding = get_balance(session, AccountCode.INSTALMENT_RECEIVABLE, customer.id)
    plan = get_active_instalment_plan(session, customer.id)
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


def _tariff_token(
    session: Session, meter: Meter, key: DecoderKey, rate: int, now: datetime
) -> dict[str, Any]:
    if not 0 < rate <= MAX_RATE_FIELD:
        raise VendRefused(
            "tariff_unrepresentable", f"a rate of {rate} paise per SCM does not fit a SetTariffRate"
        )
    tid = allocate_tid(session, meter, now=now)
    issued = issue_set_tariff_rate(decoder_key=key, rate_field=rate, tid=tid, ken=meter.ken)
    meter.tariff_on_meter = rate
    return {"kind": TokenKind.SET_TARIFF_RATE.value, "token": issued.token, "tid": tid}


def _credit_token(
    session: Session,
    meter: Meter,
    model: MeterModel,
    key: DecoderKey,
    gas_value_paise: int,
    litres: int,
    now: datetime,
) -> tuple[dict[str, Any], int]:
    currency = model.mode == "currency"
    convention = AmountConvention(
        model.credit_subclass, "paise" if currency else "litres", model.base_units_per_count
    )
    tid = allocate_tid(session, meter, now=now)
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


def vend_body(session: Session, vend: Vend) -> dict[str, Any]:
    """What an STS receipt shows, as the API returns it."""
    meter = session.get(Meter, vend.meter_id)
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
