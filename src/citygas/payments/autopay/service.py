"""Auto top-up use cases: set up a UPI AutoPay mandate, confirm its approval, pause, resume, cancel,
change its terms; and the job's step for one mandate — notify before a debit, debit after the notice
window, vend what was paid, or tell the household that it failed.

Exactly once, across crashes and retries:
- each debit is its own gateway order, created with the pre-debit notice and stored before any money
  moves; an order takes one successful payment, and before charging, the step asks the gateway for the
  order's payments — so a step that crashed after the gateway took the money finds that payment and
  does not charge again;
- the vend's idempotency key is `autopay:<mandate id>:<debit sequence>`, so the job, its retry and a
  webhook (`on_gateway_payment`) all end in the same single vend;
- every step locks the mandate's row first, then its debit (a fixed order).

The balance comes from metering through a function the caller passes (`EstimateFn`), so this module
does not depend on how the balance is estimated. Every `do_*` takes the caller's `Session` and never
commits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygas.customers.households import connections_of_phone
from citygas.customers.models import Customer
from citygas.meters.models import Meter
from citygas.notifications import ports as notifications
from citygas.payments.autopay.models import AutopayDebit, AutopayMandate
from citygas.payments.autopay.rules import (
    DEFAULT_CONFIG,
    LIVE_STATES,
    MANDATE,
    OPEN_STATES,
    AutopayConfig,
    AutopayRefused,
    check_terms,
    check_vpa,
    india_day_start,
    india_month_start,
    mask_vpa,
    needs_topup,
    notice_for,
    over_frequency_limit,
    vend_key,
)
from citygas.payments.gateway.ports import GatewayError, GatewayPaymentInfo, MandateGateway, PaymentGateway
from citygas.payments.gateway.razorpay_adapter import RazorpayGateway
from citygas.payments.gateway.service import BadSignature
from citygas.payments.gateway.simulator import GatewaySimulator
from citygas.platform import workflow
from citygas.platform.errors import Conflict, DomainError, NotFound
from citygas.platform.money import format_inr
from citygas.platform.settings import Settings
from citygas.platform.tenancy import Tenant, current_tenant
from citygas.platform.time import format_india, utcnow
from citygas.vending.models import Vend
from citygas.vending.rules import Channel, VendRequest
from citygas.vending.service import do_vend

log = logging.getLogger(__name__)

# The household's estimated balance in paise (None: not known), as metering computes it.
EstimateFn = Callable[[Session, Meter, datetime], int | None]

IN_FLIGHT = ("notified", "debiting")
PRESENTED = ("notified", "debiting", "succeeded", "failed", "vend_failed")  # count towards the limits
CAPTURED = ("captured",)
PENDING = ("created", "authorized")
IN_DOUBT_AFTER_SECONDS = 1800  # a charge the gateway has no record of after this long did not happen

# Crash tests set this to raise at a named step; production never does.
checkpoint: Callable[[str], None] = lambda _step: None  # noqa: E731


class UnknownMandate(NotFound):
    code = "unknown_mandate"


class AutopayNotSupported(Conflict):
    code = "autopay_not_supported"


class MandateStateConflict(Conflict):
    code = "mandate_state"


DEMO_NOTICE = timedelta(minutes=2)  # the simulator's notice in development: a demo cannot wait a day


def config_from(settings: Settings) -> AutopayConfig:
    """The configuration in force. `autopay_notice_minutes` (CITYGAS_AUTOPAY_NOTICE_MINUTES, when the
    settings have it) sets the simulator's notice; development defaults to a short demo notice. A real
    gateway is never given less than 24 hours whatever is set here (`rules.notice_for`)."""
    minutes = getattr(settings, "autopay_notice_minutes", None)
    if isinstance(minutes, int) and not isinstance(minutes, bool) and minutes > 0:
        notice = timedelta(minutes=minutes)
        return replace(DEFAULT_CONFIG, notice=notice, retry_gap=max(notice, timedelta(minutes=5)))
    if settings.is_development:
        return replace(DEFAULT_CONFIG, notice=DEMO_NOTICE, retry_gap=timedelta(minutes=5))
    return DEFAULT_CONFIG


def mandate_gateway(gateway: PaymentGateway) -> MandateGateway:
    """The tenant's gateway as one that takes mandates (both adapters do)."""
    if isinstance(gateway, GatewaySimulator | RazorpayGateway):
        return cast(MandateGateway, gateway)
    raise AutopayNotSupported(f"the {gateway.name} gateway does not take UPI AutoPay mandates")


# --- reading ---------------------------------------------------------------------------------------------


household_connections = connections_of_phone


def get_mandate(
    session: Session, mandate_id: uuid.UUID, *, household_phone: str | None, lock: bool = False
) -> AutopayMandate:
    """A mandate of the caller's tenant; for a household (`household_phone`), only of its own
    connections — another household's mandate looks exactly like an unknown one."""
    query = select(AutopayMandate).where(AutopayMandate.id == mandate_id)
    if lock:
        query = query.with_for_update()
    mandate = session.execute(query).scalar_one_or_none()
    if mandate is not None and household_phone is not None:
        owner = session.get(Customer, mandate.customer_id)
        if owner is None or owner.phone != household_phone:
            mandate = None
    if mandate is None:
        raise UnknownMandate(f"no auto top-up {mandate_id}")
    return mandate


def mandates_of(session: Session, customer_id: uuid.UUID) -> list[AutopayMandate]:
    """The connection's mandates, newest first."""
    return list(
        session.execute(
            select(AutopayMandate)
            .where(AutopayMandate.customer_id == customer_id)
            .order_by(AutopayMandate.created_at.desc(), AutopayMandate.id.desc())
        ).scalars()
    )


def debits_of(session: Session, mandate_ids: Sequence[uuid.UUID], *, limit: int = 10) -> list[AutopayDebit]:
    if not mandate_ids:
        return []
    return list(
        session.execute(
            select(AutopayDebit)
            .where(AutopayDebit.mandate_id.in_(list(mandate_ids)))
            .order_by(AutopayDebit.notified_at.desc(), AutopayDebit.sequence.desc())
            .limit(limit)
        ).scalars()
    )


def _active_meter(session: Session, customer_id: uuid.UUID) -> Meter | None:
    return session.execute(
        select(Meter).where(Meter.customer_id == customer_id, Meter.state == "active")
    ).scalar_one_or_none()


def _customer(session: Session, mandate: AutopayMandate) -> Customer:
    customer = session.get(Customer, mandate.customer_id)
    assert customer is not None  # a foreign key
    return customer


def _sms(session: Session, mandate: AutopayMandate, text: str) -> None:
    notifications.request(session, channel="sms", to=_customer(session, mandate).phone, text=text)


def _move(session: Session, mandate: AutopayMandate, action: str, reason: str | None = None) -> None:
    """Fire a transition of the mandate's state machine (history row, work item) and keep the live key."""
    workflow.do_transition(session, MANDATE, mandate, action, permissions=frozenset(), reason=reason)
    mandate.state_reason = (reason or "")[:300]
    if mandate.state not in LIVE_STATES:
        mandate.live_key = None
    session.flush()


def _skip_waiting_debits(session: Session, mandate: AutopayMandate, why: str) -> None:
    """Debits still in their notice window are not made once the mandate stops (the payer may opt out)."""
    for debit in session.execute(
        select(AutopayDebit).where(AutopayDebit.mandate_id == mandate.id, AutopayDebit.state == "notified")
    ).scalars():
        debit.state = "skipped"
        debit.failure_reason = why[:300]


# --- setting up ------------------------------------------------------------------------------------------


def do_start_mandate(
    session: Session,
    gateway: PaymentGateway,
    *,
    customer: Customer,
    threshold_paise: int,
    amount_paise: int,
    max_amount_paise: int,
    vpa: str = "",
    now: datetime | None = None,
    config: AutopayConfig = DEFAULT_CONFIG,
    replaces: AutopayMandate | None = None,
) -> AutopayMandate:
    """Register a mandate at the gateway for the household to approve in its UPI app. Refused, with
    nothing written, when the terms break a rule or the connection cannot take credit."""
    terms = check_terms(
        threshold_paise=threshold_paise, amount_paise=amount_paise, max_amount_paise=max_amount_paise
    )
    payer_vpa = check_vpa(vpa)
    if _active_meter(session, customer.id) is None:
        raise AutopayRefused(
            "no_active_meter", f"connection {customer.consumer_number} has no meter that can take credit now"
        )
    cards = mandate_gateway(gateway)
    now = now or utcnow()
    for earlier in mandates_of(session, customer.id):  # one set-up at a time: a new one supersedes
        if earlier.state in ("created", "pending_authorisation"):
            _move(session, earlier, "cancel", "a newer auto top-up set-up replaced it")
    mandate = AutopayMandate(
        customer_id=customer.id,
        consumer_number=customer.consumer_number,
        state="created",
        live_key=None,
        threshold_paise=terms.threshold_paise,
        amount_paise=terms.amount_paise,
        max_amount_paise=terms.max_amount_paise,
        max_debits_per_day=config.max_debits_per_day,
        max_debits_per_month=config.max_debits_per_month,
        frequency="as_presented",
        gateway=cards.name,
        vpa=payer_vpa,
        consecutive_failures=0,
        next_sequence=1,
        retry_after=None,
        replaces_id=replaces.id if replaces is not None else None,
        expires_at=now + config.validity,
        created_at=now,
        activated_at=None,
    )
    session.add(mandate)
    session.flush()
    workflow.start(
        session,
        MANDATE,
        mandate,
        title=f"Auto top-up for {customer.consumer_number}",
        link=f"/app/autopay?consumer_number={customer.consumer_number}",
    )
    registration = cards.create_mandate_registration(
        name=customer.name,
        contact=customer.phone,
        email=customer.email,
        max_amount_paise=terms.max_amount_paise,
        expire_at=mandate.expires_at,
        receipt=f"autopay-{mandate.id.hex[:24]}",
        notes={"consumer_number": customer.consumer_number, "purpose": "gas auto top-up"},
    )
    mandate.gateway_customer_id = registration.customer_id
    mandate.authorisation_order_id = registration.order_id
    _move(session, mandate, "register")
    return mandate


def do_confirm_mandate(
    session: Session,
    gateway: PaymentGateway,
    *,
    mandate: AutopayMandate,
    order_id: str,
    payment_id: str,
    signature: str,
    now: datetime | None = None,
) -> AutopayMandate:
    """The payer's browser is back from approving the mandate. Trust nothing it says until the signature
    is verified; then ask the gateway for the token and activate. A repeat finds it active."""
    if mandate.state == "active" and mandate.authorisation_payment_id == payment_id:
        return mandate
    if order_id != mandate.authorisation_order_id or not gateway.verify_payment_signature(
        order_id=order_id, payment_id=payment_id, signature=signature
    ):
        raise BadSignature("the approval's signature does not match this auto top-up")
    if mandate.state != "pending_authorisation":
        raise MandateStateConflict(f"this auto top-up is {mandate.state.replace('_', ' ')}")
    _activate(session, mandate_gateway(gateway), mandate, payment_id, now or utcnow())
    return mandate


def do_refresh_authorisation(
    session: Session,
    gateway: PaymentGateway,
    *,
    mandate: AutopayMandate,
    now: datetime | None = None,
    config: AutopayConfig = DEFAULT_CONFIG,
) -> str:
    """Ask the gateway how the approval went (the payer may have closed the browser, or declined)."""
    if mandate.state != "pending_authorisation":
        return mandate.state
    now = now or utcnow()
    cards = mandate_gateway(gateway)
    payments = cards.order_payments(mandate.authorisation_order_id)
    approved = next((p for p in payments if p.status in (*CAPTURED, "authorized")), None)
    if approved is not None:
        _activate(session, cards, mandate, approved.id, now)
    elif payments and all(p.status == "failed" for p in payments):
        _move(session, mandate, "decline", payments[-1].error_description or "not approved in the UPI app")
    elif now >= mandate.created_at + config.authorisation_window:
        _move(session, mandate, "expire", "not approved in time")
    return mandate.state


def _activate(
    session: Session, cards: MandateGateway, mandate: AutopayMandate, payment_id: str, now: datetime
) -> None:
    info = cards.fetch_mandate(customer_id=mandate.gateway_customer_id, payment_id=payment_id)
    mandate.authorisation_payment_id = payment_id
    if info.status in ("rejected", "cancelled"):
        _move(session, mandate, "decline", info.failure_reason or f"the mandate was {info.status}")
        return
    if info.status != "confirmed":  # still with the payer's bank: the job asks again
        session.flush()
        return
    # One working mandate per connection: the one this replaces (new maximum) and any other stop now.
    for other in session.execute(
        select(AutopayMandate)
        .where(AutopayMandate.customer_id == mandate.customer_id, AutopayMandate.state.in_(LIVE_STATES))
        .with_for_update()
    ).scalars():
        _stop_at_gateway(cards, other)
        _skip_waiting_debits(session, other, "replaced by a new auto top-up")
        _move(session, other, "cancel", "replaced by a new auto top-up with other limits")
    mandate.token_id = info.token_id
    mandate.vpa = (info.vpa or mandate.vpa)[:100]
    # The bank's registered maximum rules where it is lower than what was asked for.
    mandate.max_amount_paise = min(
        mandate.max_amount_paise, info.max_amount_paise or mandate.max_amount_paise
    )
    mandate.activated_at = now
    mandate.live_key = mandate.customer_id
    _move(session, mandate, "authorise")
    _sms(
        session,
        mandate,
        f"Auto top-up is on for {mandate.consumer_number}: when the balance falls below "
        f"{format_inr(mandate.threshold_paise)} we top up {format_inr(mandate.amount_paise)} from UPI "
        f"{mask_vpa(mandate.vpa) or 'AutoPay'}, and tell you before each debit. "
        "Pause or cancel it in the app.",
    )


def _stop_at_gateway(cards: MandateGateway, mandate: AutopayMandate) -> None:
    if mandate.token_id:
        cards.cancel_mandate(customer_id=mandate.gateway_customer_id, token_id=mandate.token_id)


# --- the household's controls ----------------------------------------------------------------------------


def do_pause_mandate(
    session: Session, *, mandate: AutopayMandate, reason: str = "paused by the household"
) -> None:
    if mandate.state != "active":
        raise MandateStateConflict(f"only an active auto top-up can be paused; this one is {mandate.state}")
    _skip_waiting_debits(session, mandate, "auto top-up paused before the debit")
    _move(session, mandate, "pause", reason)


def do_resume_mandate(session: Session, *, mandate: AutopayMandate) -> None:
    if mandate.state != "paused":
        raise MandateStateConflict(f"only a paused auto top-up can be resumed; this one is {mandate.state}")
    mandate.consecutive_failures = 0
    mandate.retry_after = None
    _move(session, mandate, "resume", "resumed by the household")


def do_cancel_mandate(
    session: Session,
    gateway: PaymentGateway,
    *,
    mandate: AutopayMandate,
    reason: str = "cancelled by the household",
) -> None:
    """Cancel here and revoke the token at the gateway, so no bank can be asked to debit under it again."""
    if mandate.state not in OPEN_STATES:
        raise MandateStateConflict(f"this auto top-up is already {mandate.state}")
    _stop_at_gateway(mandate_gateway(gateway), mandate)
    _skip_waiting_debits(session, mandate, "auto top-up cancelled before the debit")
    _move(session, mandate, "cancel", reason)


@dataclass(frozen=True)
class TermsChange:
    mandate: AutopayMandate
    new_mandate: AutopayMandate | None  # set when the maximum changed: it needs the payer's approval


def do_change_terms(
    session: Session,
    gateway: PaymentGateway,
    *,
    mandate: AutopayMandate,
    threshold_paise: int,
    amount_paise: int,
    max_amount_paise: int,
    now: datetime | None = None,
    config: AutopayConfig = DEFAULT_CONFIG,
) -> TermsChange:
    """New threshold or amount within the approved maximum: changed here. A new maximum is a new
    mandate the payer approves; the old one keeps working until then and is cancelled on approval."""
    terms = check_terms(
        threshold_paise=threshold_paise, amount_paise=amount_paise, max_amount_paise=max_amount_paise
    )
    if mandate.state not in LIVE_STATES:
        raise MandateStateConflict("only an active or paused auto top-up can be changed; set up a new one")
    if terms.max_amount_paise == mandate.max_amount_paise:
        mandate.threshold_paise = terms.threshold_paise
        mandate.amount_paise = terms.amount_paise
        session.flush()
        return TermsChange(mandate, None)
    new = do_start_mandate(
        session,
        gateway,
        customer=_customer(session, mandate),
        threshold_paise=terms.threshold_paise,
        amount_paise=terms.amount_paise,
        max_amount_paise=terms.max_amount_paise,
        vpa=mandate.vpa,
        now=now,
        config=config,
        replaces=mandate,
    )
    return TermsChange(mandate, new)


# --- the job's step for one mandate ----------------------------------------------------------------------


def open_mandate_ids(session: Session) -> list[uuid.UUID]:
    """The tenant's mandates the job looks at: waiting for approval, or working."""
    return list(
        session.execute(
            select(AutopayMandate.id)
            .where(AutopayMandate.state.in_(["pending_authorisation", "active", "paused"]))
            .order_by(AutopayMandate.id)
        ).scalars()
    )


def do_autopay_step(
    session: Session,
    gateway: PaymentGateway,
    *,
    mandate_id: uuid.UUID,
    estimate: EstimateFn,
    master_key: bytes,
    now: datetime | None = None,
    config: AutopayConfig = DEFAULT_CONFIG,
) -> str:
    """Move one mandate on by what is due now; returns what happened (for logs and tests)."""
    now = now or utcnow()
    mandate = get_mandate(session, mandate_id, household_phone=None, lock=True)
    if mandate.state == "pending_authorisation":
        return "authorisation:" + do_refresh_authorisation(
            session, gateway, mandate=mandate, now=now, config=config
        )
    if mandate.state not in LIVE_STATES:
        return mandate.state
    cards = mandate_gateway(gateway)
    debit = (
        session.execute(
            select(AutopayDebit)
            .where(AutopayDebit.mandate_id == mandate.id, AutopayDebit.state.in_(IN_FLIGHT))
            .order_by(AutopayDebit.sequence.desc())
            .with_for_update()
        )
        .scalars()
        .first()
    )
    if debit is not None:
        return _progress_debit(session, cards, mandate, debit, master_key=master_key, now=now, config=config)
    if now >= mandate.expires_at:
        _stop_at_gateway(cards, mandate)
        _move(session, mandate, "expire", "the mandate reached its end date")
        _sms(
            session,
            mandate,
            f"Auto top-up for {mandate.consumer_number} has ended. Set it up again in the app.",
        )
        return "expired"
    return _maybe_notify(session, cards, mandate, estimate=estimate, now=now, config=config)


def _progress_debit(
    session: Session,
    cards: MandateGateway,
    mandate: AutopayMandate,
    debit: AutopayDebit,
    *,
    master_key: bytes,
    now: datetime,
    config: AutopayConfig,
) -> str:
    if debit.state == "notified":
        if now < debit.debit_after:
            return "notice_running"
        return _execute(session, cards, mandate, debit, master_key=master_key, now=now, config=config)
    payments = cards.order_payments(debit.gateway_order_id)
    return _settle(session, cards, mandate, debit, payments, master_key=master_key, now=now, config=config)


def _maybe_notify(
    session: Session,
    cards: MandateGateway,
    mandate: AutopayMandate,
    *,
    estimate: EstimateFn,
    now: datetime,
    config: AutopayConfig,
) -> str:
    """No debit in flight: if the balance is below the threshold and the limits allow, give notice."""
    if mandate.state != "active":
        return "paused"
    if mandate.retry_after is not None and now < mandate.retry_after:
        return "retry_later"
    meter = _active_meter(session, mandate.customer_id)
    balance = estimate(session, meter, now) if meter is not None else None
    if not needs_topup(balance, mandate.threshold_paise):
        return "balance_ok" if balance is not None else "balance_unknown"
    why_not = over_frequency_limit(
        debits_today=_presented_since(session, mandate, india_day_start(now)),
        debits_this_month=_presented_since(session, mandate, india_month_start(now)),
        per_day=mandate.max_debits_per_day,
        per_month=mandate.max_debits_per_month,
    )
    if why_not is not None:
        log.info("auto top-up held back", extra={"mandate_id": str(mandate.id), "why": why_not})
        return "limit_reached"
    _notify(session, cards, mandate, balance, now=now, config=config)
    return "notified"


def _presented_since(session: Session, mandate: AutopayMandate, since: datetime) -> int:
    return int(
        session.execute(
            select(func.count())
            .select_from(AutopayDebit)
            .where(
                AutopayDebit.mandate_id == mandate.id,
                AutopayDebit.state.in_(PRESENTED),
                AutopayDebit.notified_at >= since,
            )
        ).scalar_one()
    )


def _notify(
    session: Session,
    cards: MandateGateway,
    mandate: AutopayMandate,
    balance: int | None,
    *,
    now: datetime,
    config: AutopayConfig,
) -> AutopayDebit:
    """The pre-debit notice: the debit's order (with the gateway's own notification) and our SMS, naming
    the merchant, the amount and when. The debit is made only after the notice window."""
    sequence = mandate.next_sequence
    mandate.next_sequence += 1
    debit_after = now + notice_for(cards.name, config)
    order = cards.notify_mandate_debit(
        token_id=mandate.token_id,
        amount_paise=mandate.amount_paise,
        debit_after=debit_after,
        receipt=f"autopay-{mandate.id.hex[:20]}-{sequence}",
        notes={
            "consumer_number": mandate.consumer_number,
            "mandate": str(mandate.id),
            "sequence": str(sequence),
        },
    )
    debit = AutopayDebit(
        mandate_id=mandate.id,
        sequence=sequence,
        amount_paise=mandate.amount_paise,
        state="notified",
        balance_paise=balance,
        gateway_order_id=order.id,
        gateway_payment_id="",
        notified_at=now,
        debit_after=debit_after,
        attempted_at=None,
        settled_at=None,
        vend_id=None,
        failure_reason="",
    )
    session.add(debit)
    tenant = session.get(Tenant, current_tenant(session))
    merchant = tenant.name if tenant is not None else "your gas company"
    _sms(
        session,
        mandate,
        f"{merchant}: gas balance of {mandate.consumer_number} is low. Auto top-up will debit "
        f"{format_inr(mandate.amount_paise)} from UPI {mask_vpa(mandate.vpa) or 'AutoPay'} after "
        f"{format_india(debit_after)} (ref {order.id}). To stop it, pause auto top-up in the app.",
    )
    session.flush()
    return debit


def _execute(
    session: Session,
    cards: MandateGateway,
    mandate: AutopayMandate,
    debit: AutopayDebit,
    *,
    master_key: bytes,
    now: datetime,
    config: AutopayConfig,
) -> str:
    # Was this order paid already (a step that crashed after the charge)? Then settle that payment.
    payments = cards.order_payments(debit.gateway_order_id)
    debit.state = "debiting"
    debit.attempted_at = now
    if not payments:
        customer = _customer(session, mandate)
        try:
            payments = [
                cards.charge_mandate(
                    customer_id=mandate.gateway_customer_id,
                    token_id=mandate.token_id,
                    order_id=debit.gateway_order_id,
                    amount_paise=debit.amount_paise,
                    contact=customer.phone,
                    email=customer.email,
                    description=f"Gas auto top-up {mandate.consumer_number}",
                    notes={"mandate": str(mandate.id), "sequence": str(debit.sequence)},
                )
            ]
        except GatewayError as exc:
            # In doubt: the charge may or may not have reached the bank. The next step asks the order.
            debit.failure_reason = exc.detail[:300]
            session.flush()
            return "charge_in_doubt"
    return _settle(session, cards, mandate, debit, payments, master_key=master_key, now=now, config=config)


def _settle(
    session: Session,
    cards: MandateGateway,
    mandate: AutopayMandate,
    debit: AutopayDebit,
    payments: Sequence[GatewayPaymentInfo],
    *,
    master_key: bytes,
    now: datetime,
    config: AutopayConfig,
) -> str:
    paid = next((p for p in payments if p.status in CAPTURED), None)
    if paid is not None:
        return _vend_debit(session, cards, mandate, debit, paid, master_key=master_key, now=now)
    if any(p.status in PENDING for p in payments):
        return "debit_pending"
    if payments:
        reason = payments[-1].error_description or "the payer's bank declined the debit"
        return _fail_debit(session, mandate, debit, reason, now=now, config=config)
    attempted = debit.attempted_at or now
    if (now - attempted).total_seconds() < IN_DOUBT_AFTER_SECONDS:
        return "debit_pending"
    return _fail_debit(
        session,
        mandate,
        debit,
        debit.failure_reason or "the gateway did not make the debit",
        now=now,
        config=config,
    )


def _vend_debit(
    session: Session,
    cards: MandateGateway,
    mandate: AutopayMandate,
    debit: AutopayDebit,
    paid: GatewayPaymentInfo,
    *,
    master_key: bytes,
    now: datetime,
) -> str:
    debit.gateway_payment_id = paid.id
    debit.state = "debiting"
    checkpoint("charged")
    if paid.amount_paise != debit.amount_paise:
        return _vend_refused(
            session, cards, mandate, debit, paid, f"the gateway took {format_inr(paid.amount_paise)}", now
        )
    request = VendRequest(
        channel=Channel.UPI,
        amount_paise=debit.amount_paise,
        idempotency_key=vend_key(mandate.id, debit.sequence),
        consumer_number=mandate.consumer_number,
        payment_reference=paid.id,
    )
    try:
        # A savepoint: a vend the rules refuse leaves none of its rows, and the debit still records.
        with session.begin_nested():
            vend: Vend = do_vend(session, request, master_key=master_key, now=now).vend
    except DomainError as exc:
        if exc.status == 409:  # in doubt or conflicting: leave it for the next step
            raise
        return _vend_refused(session, cards, mandate, debit, paid, exc.detail, now)
    checkpoint("vended")
    debit.vend_id = vend.id
    debit.state = "succeeded"
    debit.settled_at = now
    debit.failure_reason = ""
    mandate.consecutive_failures = 0
    mandate.retry_after = None
    session.flush()
    return "vended"


def _vend_refused(
    session: Session,
    cards: MandateGateway,
    mandate: AutopayMandate,
    debit: AutopayDebit,
    paid: GatewayPaymentInfo,
    why: str,
    now: datetime,
) -> str:
    """Money taken, top-up refused (meter suspended since, a limit): refund it, tell the household, and
    pause — debiting again would only be refused again."""
    debit.state = "vend_failed"
    debit.settled_at = now
    debit.failure_reason = why[:300]
    try:
        refund = cards.refund(
            paid.id,
            amount_paise=paid.amount_paise,
            receipt=f"autopay-refund-{debit.id.hex[:24]}",
            notes={"reason": "auto top-up could not be made"},
        )
        debit.refund_id = refund.id
    except GatewayError as exc:  # the back office refunds it from the payment (docs/autopay.md)
        log.warning("auto top-up refund failed", extra={"payment_id": paid.id, "detail": exc.detail})
    _sms(
        session,
        mandate,
        f"{format_inr(paid.amount_paise)} was debited for auto top-up of {mandate.consumer_number} but the "
        f"top-up could not be made: {why}. It will be refunded. Auto top-up is paused.",
    )
    if mandate.state == "active":
        _move(session, mandate, "pause", f"a debit could not be topped up: {why}")
    session.flush()
    return "vend_failed"


def _fail_debit(
    session: Session,
    mandate: AutopayMandate,
    debit: AutopayDebit,
    reason: str,
    *,
    now: datetime,
    config: AutopayConfig,
) -> str:
    debit.state = "failed"
    debit.settled_at = now
    debit.failure_reason = reason[:300]
    mandate.consecutive_failures += 1
    mandate.retry_after = now + config.retry_gap
    _sms(
        session,
        mandate,
        f"Auto top-up of {format_inr(debit.amount_paise)} failed: {reason}. Top up in the app.",
    )
    if mandate.consecutive_failures >= config.failures_to_pause and mandate.state == "active":
        _move(session, mandate, "pause", f"{mandate.consecutive_failures} auto top-ups in a row failed")
        _sms(
            session,
            mandate,
            f"Auto top-up for {mandate.consumer_number} is paused after "
            f"{mandate.consecutive_failures} failed debits. Please top up yourself in the app, at a CSC "
            "or by BBPS so your gas keeps flowing, and resume auto top-up in the app when your UPI "
            "account is ready.",
        )
    session.flush()
    return "failed"


def on_gateway_payment(
    session: Session,
    gateway: PaymentGateway,
    info: GatewayPaymentInfo,
    *,
    master_key: bytes,
    now: datetime | None = None,
    config: AutopayConfig = DEFAULT_CONFIG,
) -> str | None:
    """A verified `payment.captured` / `payment.failed` webhook for a payment whose order may be an auto
    top-up debit: settle that debit now rather than at the job's next run. None when it is not a debit.
    The webhook's copy is not trusted for the outcome: the order's payments are asked for afresh."""
    found = session.execute(
        select(AutopayDebit.mandate_id).where(AutopayDebit.gateway_order_id == info.order_id)
    ).scalar_one_or_none()
    if found is None:
        return None
    now = now or utcnow()
    mandate = get_mandate(session, found, household_phone=None, lock=True)
    debit = session.execute(
        select(AutopayDebit).where(AutopayDebit.gateway_order_id == info.order_id).with_for_update()
    ).scalar_one()
    if debit.state not in IN_FLIGHT:
        return f"already_{debit.state}"
    cards = mandate_gateway(gateway)
    return _settle(
        session,
        cards,
        mandate,
        debit,
        cards.order_payments(info.order_id),
        master_key=master_key,
        now=now,
        config=config,
    )
