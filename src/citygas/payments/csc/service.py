"""CSC agent use cases: profiles, float top-ups with back-office approval, vends from the float with
commission, the day's vends and the daily statement. Every function takes the caller's `Session` and
never commits; the route (or test) commits its unit of work once.

The money path of a CSC vend is one transaction: lock the agent → check the float → `do_vend` (ledger
entry Dr agent_float(agent), tokens, receipt number) → commission entry → the `csc_vend` row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.customers.service import get_customer
from citygas.identity.models import StaffUser
from citygas.identity.rules import Role
from citygas.ledger.models import JournalEntry, LedgerAccount, Posting
from citygas.ledger.rules import AccountCode, credit, debit
from citygas.ledger.service import account_for, get_balance, india_today, post_entry
from citygas.meters.models import Meter
from citygas.payments.csc.models import CommissionPayout, CscAgent, CscVend, FloatTopup
from citygas.payments.csc.rules import (
    FLOAT_TOPUP,
    CommissionSummary,
    Period,
    StatementTotals,
    check_client_ref,
    commission_on,
)
from citygas.platform.context import actor_of
from citygas.platform.errors import Conflict, DomainError, NotFound, ValidationFailed
from citygas.platform.ids import uuid7
from citygas.platform.money import format_inr
from citygas.platform.time import INDIA, utcnow
from citygas.platform.workflow import WorkflowTransition, do_transition, history, start
from citygas.tariffs.rules import CommissionRule
from citygas.vending.models import Vend
from citygas.vending.rules import DEFAULT_LIMITS, Channel, VendLimits, VendRequest
from citygas.vending.service import do_vend

TOPUP_ENTRY_KIND = "csc_float_topup"
COMMISSION_ENTRY_KIND = "csc_commission"
PAYOUT_ENTRY_KIND = "csc_commission_payout"
VEND_ENTRY_KIND = "topup"  # what `post_topup` writes for every vend
MAX_FLOAT_TOPUP_PAISE = 1_00_00_000_00  # ₹1 crore: a bigger number is a typing slip, not a deposit


class FloatExhausted(DomainError):
    """The agent's float does not cover the vend; nothing was written."""

    code = "float_exhausted"
    status = 422
    title = "Not enough float"


class FourEyesRequired(DomainError):
    """The person who entered a float top-up tried to approve it: a second person must check the bank
    statement. Nothing was written."""

    code = "four_eyes_required"
    status = 403
    title = "Another person must approve"


class CommissionOverpaid(DomainError):
    """A payout larger than the commission the agent has earned and not been paid; nothing was written."""

    code = "commission_overpaid"
    status = 422
    title = "More than the commission owed"


class AgentInactive(DomainError):
    code = "agent_inactive"
    status = 403
    title = "Agent suspended"


# --- profiles ------------------------------------------------------------------------------------


def rule_of(agent: CscAgent) -> CommissionRule:
    return CommissionRule(
        percent_bp=agent.commission_percent_bp,
        flat_paise=agent.commission_flat_paise,
        cap_paise=agent.commission_cap_paise,
    )


def get_agent(session: Session, agent_id: uuid.UUID) -> CscAgent:
    agent = session.get(CscAgent, agent_id)
    if agent is None:
        raise NotFound("no such CSC agent")
    return agent


def get_agent_for_user(session: Session, user_id: uuid.UUID) -> CscAgent:
    agent = session.execute(select(CscAgent).where(CscAgent.user_id == user_id)).scalar_one_or_none()
    if agent is None:
        raise NotFound("your CSC agent profile is not set up yet; ask the CGD's back office")
    return agent


def list_agents(session: Session) -> list[CscAgent]:
    return list(session.execute(select(CscAgent).order_by(CscAgent.csc_id)).scalars())


def list_unprofiled_agent_users(session: Session) -> list[StaffUser]:
    """csc_agent staff users that have no agent profile yet (what the back office can set up)."""
    profiled = select(CscAgent.user_id)
    users = session.execute(
        select(StaffUser).where(StaffUser.id.not_in(profiled)).order_by(StaffUser.username)
    ).scalars()
    return [u for u in users if Role.CSC_AGENT.value in u.role_names]


def do_create_agent(
    session: Session,
    *,
    username: str,
    csc_id: str,
    village: str,
    rule: CommissionRule,
) -> CscAgent:
    """An agent profile for a staff user holding the csc_agent role."""
    user = session.execute(
        select(StaffUser).where(StaffUser.username == username.strip())
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no staff user {username}")
    if Role.CSC_AGENT.value not in user.role_names:
        raise ValidationFailed(f"{username} is not a CSC agent; give the user the csc_agent role first")
    csc_id, village = csc_id.strip().upper(), village.strip()
    if not csc_id or len(csc_id) > 32:
        raise ValidationFailed("a CSC id is 1–32 characters")
    if not village or len(village) > 120:
        raise ValidationFailed("name the village or town of the kiosk (at most 120 characters)")
    if session.execute(select(CscAgent.id).where(CscAgent.user_id == user.id)).first():
        raise Conflict(f"{username} already has an agent profile")
    if session.execute(select(CscAgent.id).where(CscAgent.csc_id == csc_id)).first():
        raise Conflict(f"CSC id {csc_id} belongs to another agent")
    agent = CscAgent(
        id=uuid7(),
        user_id=user.id,
        csc_id=csc_id,
        name=user.full_name,
        village=village,
        commission_percent_bp=rule.percent_bp,
        commission_flat_paise=rule.flat_paise,
        commission_cap_paise=rule.cap_paise,
        active=True,
        created_at=utcnow(),
        version=1,
    )
    session.add(agent)
    session.flush()
    return agent


def do_set_commission(session: Session, agent: CscAgent, rule: CommissionRule) -> CscAgent:
    """New commission terms apply to vends from now on; earned commission is never recomputed."""
    agent.commission_percent_bp = rule.percent_bp
    agent.commission_flat_paise = rule.flat_paise
    agent.commission_cap_paise = rule.cap_paise
    session.flush()
    return agent


def do_set_agent_active(session: Session, agent: CscAgent, *, active: bool) -> CscAgent:
    agent.active = active
    session.flush()
    return agent


def get_float(session: Session, agent: CscAgent) -> int:
    """The agent's float in paise: the ledger balance of agent_float(agent)."""
    return get_balance(session, AccountCode.AGENT_FLOAT, str(agent.id))


def get_commission_payable(session: Session, agent: CscAgent) -> int:
    return get_balance(session, AccountCode.COMMISSION_PAYABLE, str(agent.id))


# --- float top-ups -------------------------------------------------------------------------------


def do_request_float_topup(
    session: Session,
    agent: CscAgent,
    *,
    amount_paise: int,
    reference: str,
    requested_by: str,
    note: str = "",
) -> FloatTopup:
    """The agent (or the back office for the agent) says money was paid to the CGD's bank: the float
    grows only when the back office approves it against the bank statement."""
    if isinstance(amount_paise, bool) or not isinstance(amount_paise, int) or amount_paise <= 0:
        raise ValidationFailed("a float top-up is a positive amount")
    if amount_paise > MAX_FLOAT_TOPUP_PAISE:
        raise ValidationFailed(f"a float top-up is at most {format_inr(MAX_FLOAT_TOPUP_PAISE)}")
    ref = reference.strip().upper()
    if not 4 <= len(ref) <= 64:
        raise ValidationFailed("give the bank UTR or UPI reference of the payment (4–64 characters)")
    # One bank credit tops up one float once: a reference already requested or approved is refused.
    used = session.execute(
        select(FloatTopup.id).where(FloatTopup.reference == ref, FloatTopup.state != "rejected")
    ).first()
    if used:
        raise Conflict(f"payment reference {ref} is already on a float top-up")
    topup = FloatTopup(
        id=uuid7(),
        agent_id=agent.id,
        amount_paise=amount_paise,
        reference=ref,
        note=note.strip()[:300],
        state=FLOAT_TOPUP.initial,
        requested_by=requested_by[:200],
        requested_at=utcnow(),
        decided_at=None,
        ledger_entry_id=None,
    )
    session.add(topup)
    session.flush()
    start(
        session,
        FLOAT_TOPUP,
        topup,
        title=f"Float top-up {format_inr(amount_paise)} for CSC {agent.csc_id} ({ref})",
        link="/ops/csc/topups",
    )
    return topup


def get_float_topup(session: Session, topup_id: uuid.UUID, *, lock: bool = False) -> FloatTopup:
    topup = session.get(FloatTopup, topup_id)
    if topup is None:
        raise NotFound("no such float top-up")
    if lock:
        # Two approvers clicking at once: the second waits here and then finds it decided.
        session.refresh(topup, with_for_update=True)
    return topup


@dataclass(frozen=True, slots=True)
class Requester:
    """Who entered a float top-up, from the first row of its workflow history (kept append-only, with
    the actor's id), so the four-eyes rule needs no column of its own. `id` is None for a system actor."""

    kind: str
    id: uuid.UUID | None
    label: str

    def is_person(self, kind: str, actor_id: uuid.UUID | None) -> bool:
        """The same identified person (a staff user or an API key); system actors have no id and are
        never anybody's "self"."""
        return self.id is not None and (self.kind, self.id) == (kind, actor_id)


def float_topup_requesters(session: Session, topup_ids: list[uuid.UUID]) -> dict[uuid.UUID, Requester]:
    if not topup_ids:
        return {}
    rows = session.execute(
        select(WorkflowTransition).where(
            WorkflowTransition.workflow == FLOAT_TOPUP.name,
            WorkflowTransition.action == "start",
            WorkflowTransition.entity_id.in_(topup_ids),
        )
    ).scalars()
    return {r.entity_id: Requester(r.actor_kind, r.actor_id, r.actor_label) for r in rows}


def check_four_eyes(
    session: Session, topup: FloatTopup, *, approver_kind: str, approver_id: uuid.UUID | None
) -> None:
    """Refuse the approval by the person who entered (or requested) the top-up: one person alone could
    otherwise grow a float with money that never arrived."""
    requester = float_topup_requesters(session, [topup.id]).get(topup.id)
    if requester is not None and requester.is_person(approver_kind, approver_id):
        raise FourEyesRequired(
            "you entered this float top-up, so another person with float approval must check the bank "
            "statement and approve it",
            topup_id=str(topup.id),
        )


def do_approve_float_topup(
    session: Session, topup: FloatTopup, *, permissions: frozenset[str], reason: str | None = None
) -> FloatTopup:
    """Approve: Dr bank / Cr agent_float(agent), in the same transaction as the state change. The
    approver (the unit of work's actor) must not be the person who entered it (four eyes); the history
    keeps both: the `start` row names who entered it, the `approve` row who approved it."""
    session.refresh(topup, with_for_update=True)
    if topup.state == FLOAT_TOPUP.initial:  # a decided top-up gets the workflow's own refusal below
        actor = actor_of(session)
        check_four_eyes(session, topup, approver_kind=actor.kind, approver_id=actor.id)
    do_transition(session, FLOAT_TOPUP, topup, "approve", permissions=permissions, reason=reason)
    posted = post_entry(
        session,
        idempotency_key=f"csc-float-topup:{topup.id}",
        reference=topup.reference,
        kind=TOPUP_ENTRY_KIND,
        lines=[
            debit(account_for(session, AccountCode.BANK).id, topup.amount_paise),
            credit(account_for(session, AccountCode.AGENT_FLOAT, str(topup.agent_id)).id, topup.amount_paise),
        ],
        memo=f"float top-up {topup.id}",
    )
    topup.ledger_entry_id = posted.entry.id
    topup.decided_at = utcnow()
    session.flush()
    return topup


def do_reject_float_topup(
    session: Session, topup: FloatTopup, *, permissions: frozenset[str], reason: str
) -> FloatTopup:
    session.refresh(topup, with_for_update=True)
    do_transition(session, FLOAT_TOPUP, topup, "reject", permissions=permissions, reason=reason)
    topup.decided_at = utcnow()
    session.flush()
    return topup


def list_float_topups(
    session: Session, *, agent: CscAgent | None = None, state: str | None = None, limit: int = 100
) -> list[FloatTopup]:
    query = select(FloatTopup).order_by(FloatTopup.requested_at.desc()).limit(limit)
    if agent is not None:
        query = query.where(FloatTopup.agent_id == agent.id)
    if state is not None:
        query = query.where(FloatTopup.state == state)
    return list(session.execute(query).scalars())


def float_topup_history(session: Session, topup: FloatTopup) -> list[WorkflowTransition]:
    return history(session, FLOAT_TOPUP.name, topup.id)


# --- vending from the float ------------------------------------------------------------------------


@dataclass(frozen=True)
class CscVendOutcome:
    vend: Vend
    csc_vend: CscVend
    replayed: bool  # the same form (client_ref) had vended already: nothing new was written


def _lock_agent(session: Session, agent: CscAgent) -> None:
    """Serialise one agent's vends: the conditional UPDATE takes the agent row's lock (PostgreSQL) or
    runs under the database write lock (SQLite), so the float read after it includes every earlier
    vend of this agent, and a concurrent one waits until this transaction ends."""
    bumped = session.execute(
        update(CscAgent)
        .where(CscAgent.id == agent.id, CscAgent.active.is_(True))
        .values(version=CscAgent.version + 1)
        .returning(CscAgent.version)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if bumped is None:
        raise AgentInactive(f"CSC agent {agent.csc_id} is suspended; vending is not possible")


def do_csc_vend(
    session: Session,
    agent: CscAgent,
    consumer_number: str,
    amount_paise: int,
    client_ref: str,
    *,
    master_key: bytes,
    now: datetime | None = None,
) -> CscVendOutcome:
    """Cash collected at the kiosk → a vend paid from the agent's float, and the agent's commission.

    Refuses beyond the float (`float_exhausted`, nothing written). The same `client_ref` twice returns the
    first vend (a double-clicked button); the same `client_ref` for a different vend is a conflict."""
    try:
        ref = check_client_ref(client_ref)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from exc
    if isinstance(amount_paise, bool) or not isinstance(amount_paise, int) or amount_paise <= 0:
        raise ValidationFailed("the amount is a positive whole number of paise")
    consumer = consumer_number.strip().upper()
    _lock_agent(session, agent)

    earlier = session.execute(
        select(CscVend).where(CscVend.agent_id == agent.id, CscVend.client_ref == ref)
    ).scalar_one_or_none()
    if earlier is not None:
        if (earlier.consumer_number, earlier.amount_paise) != (consumer, amount_paise):
            raise Conflict("this vend form was already used for another top-up; open a new form")
        vend = session.get(Vend, earlier.vend_id)
        assert vend is not None
        return CscVendOutcome(vend, earlier, replayed=True)

    balance = get_float(session, agent)
    if amount_paise > balance:
        raise FloatExhausted(
            f"the float is {format_inr(balance)}; a top-up of {format_inr(amount_paise)} needs more. "
            "Request a float top-up.",
            float_paise=balance,
            amount_paise=amount_paise,
        )
    now = now or utcnow()
    outcome = do_vend(
        session,
        VendRequest(
            channel=Channel.CSC,
            amount_paise=amount_paise,
            idempotency_key=f"csc:{agent.id}:{ref}",
            consumer_number=consumer,
            source_party=str(agent.id),
            payment_reference=f"CSC {agent.csc_id}",
        ),
        master_key=master_key,
        now=now,
    )
    vend = outcome.vend
    commission = commission_on(rule_of(agent), amount_paise)
    entry_id = None
    if commission:
        entry_id = post_entry(
            session,
            idempotency_key=f"csc-commission:{vend.id}",
            reference=vend.receipt_number,
            kind=COMMISSION_ENTRY_KIND,
            lines=[
                debit(account_for(session, AccountCode.COMMISSION_EXPENSE).id, commission),
                credit(account_for(session, AccountCode.COMMISSION_PAYABLE, str(agent.id)).id, commission),
            ],
            effective_date=now.astimezone(INDIA).date(),
        ).entry.id
    row = CscVend(
        id=uuid7(),
        agent_id=agent.id,
        vend_id=vend.id,
        client_ref=ref,
        consumer_number=consumer,
        amount_paise=amount_paise,
        commission_paise=commission,
        commission_entry_id=entry_id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return CscVendOutcome(vend, row, replayed=outcome.replayed)


def get_csc_vend(session: Session, agent: CscAgent, vend_id: uuid.UUID) -> tuple[CscVend, Vend]:
    """One of this agent's vends (another agent's vend is not found, not forbidden)."""
    row = session.execute(
        select(CscVend).where(CscVend.agent_id == agent.id, CscVend.vend_id == vend_id)
    ).scalar_one_or_none()
    vend = session.get(Vend, vend_id) if row is not None else None
    if row is None or vend is None:
        raise NotFound("no such vend of yours")
    return row, vend


def _india_day_bounds(day: date) -> tuple[datetime, datetime]:
    start_ = datetime(day.year, day.month, day.day, tzinfo=INDIA)
    return start_, start_ + timedelta(days=1)


def list_vends_of_day(
    session: Session, agent: CscAgent, day: date | None = None
) -> list[tuple[CscVend, Vend]]:
    first, last = _india_day_bounds(day or india_today())
    rows = session.execute(
        select(CscVend, Vend)
        .join(Vend, Vend.id == CscVend.vend_id)
        .where(CscVend.agent_id == agent.id, CscVend.created_at >= first, CscVend.created_at < last)
        .order_by(CscVend.created_at.desc())
    ).all()
    return [(c, v) for c, v in rows]


@dataclass(frozen=True)
class ConsumerLookup:
    customer: Customer
    meter: Meter | None
    limits: VendLimits
    vends_today: int
    paid_today_paise: int

    @property
    def remaining_today_paise(self) -> int:
        return max(self.limits.daily_paise - self.paid_today_paise, 0)


def lookup_consumer(session: Session, consumer_number: str, *, now: datetime | None = None) -> ConsumerLookup:
    """What the agent checks before taking cash: whose connection, which meter, what may be paid."""
    customer = get_customer(session, consumer_number.strip().upper())
    meter = session.execute(
        select(Meter).where(Meter.customer_id == customer.id, Meter.state == "active")
    ).scalar_one_or_none()
    first, last = _india_day_bounds((now or utcnow()).astimezone(INDIA).date())
    count, total = session.execute(
        select(func.count(), func.coalesce(func.sum(Vend.amount_paise), 0)).where(
            Vend.customer_id == customer.id, Vend.created_at >= first, Vend.created_at < last
        )
    ).one()
    return ConsumerLookup(customer, meter, DEFAULT_LIMITS, int(count), int(total))


# --- the daily statement -------------------------------------------------------------------------


def get_statement(session: Session, agent: CscAgent, day: date) -> StatementTotals:
    """The agent's day from the ledger (entries by their India business date): opening float, float
    top-ups, vends, other adjustments, commission earned, and the closing float they add up to."""
    party = str(agent.id)
    float_account = _account_id(session, AccountCode.AGENT_FLOAT, party)
    commission_account = _account_id(session, AccountCode.COMMISSION_PAYABLE, party)
    opening = topups = vends = adjustments = commission = 0
    topup_count = vend_count = 0
    if float_account is not None:
        # A liability: a credit (negative signed amount) raises the float.
        opening = -int(
            session.execute(
                select(func.coalesce(func.sum(Posting.amount_paise), 0))
                .join(JournalEntry, JournalEntry.id == Posting.entry_id)
                .where(Posting.account_id == float_account, JournalEntry.effective_date < day)
            ).scalar_one()
        )
        for kind, total, count in session.execute(
            select(JournalEntry.kind, func.sum(Posting.amount_paise), func.count())
            .join(JournalEntry, JournalEntry.id == Posting.entry_id)
            .where(Posting.account_id == float_account, JournalEntry.effective_date == day)
            .group_by(JournalEntry.kind)
        ).all():
            change = -int(total)
            if kind == TOPUP_ENTRY_KIND:
                topups, topup_count = topups + change, topup_count + int(count)
            elif kind == VEND_ENTRY_KIND:
                vends, vend_count = vends - change, vend_count + int(count)
            else:
                adjustments += change
    if commission_account is not None:
        commission = -int(
            session.execute(
                select(func.coalesce(func.sum(Posting.amount_paise), 0))
                .join(JournalEntry, JournalEntry.id == Posting.entry_id)
                .where(
                    Posting.account_id == commission_account,
                    JournalEntry.effective_date == day,
                    JournalEntry.kind == COMMISSION_ENTRY_KIND,
                )
            ).scalar_one()
        )
    return StatementTotals(
        opening_float_paise=opening,
        topups_paise=topups,
        topup_count=topup_count,
        vends_paise=vends,
        vend_count=vend_count,
        adjustments_paise=adjustments,
        commission_paise=commission,
    )


def _account_id(session: Session, code: AccountCode, party: str) -> uuid.UUID | None:
    return session.execute(
        select(LedgerAccount.id).where(LedgerAccount.code == code.value, LedgerAccount.party == party)
    ).scalar_one_or_none()


# --- commission payouts --------------------------------------------------------------------------


MAX_PAYOUT_REFERENCE = 64


def commission_summaries(session: Session, period: Period) -> dict[uuid.UUID, CommissionSummary]:
    """Every agent's commission for `period` in one query over the `commission_payable` sub-accounts
    (agents with no commission yet are absent)."""
    amount = Posting.amount_paise
    is_payout = JournalEntry.kind == PAYOUT_ENTRY_KIND
    earned = ~is_payout
    # A liability: a credit (negative signed amount) is commission earned, a debit a payout.
    rows = session.execute(
        select(
            LedgerAccount.party,
            func.coalesce(
                func.sum(
                    case(
                        (earned & JournalEntry.effective_date.between(period.first, period.last), -amount),
                        else_=0,
                    )
                ),
                0,
            ),
            func.coalesce(
                func.sum(case((earned & (JournalEntry.effective_date <= period.last), -amount), else_=0)), 0
            ),
            func.coalesce(func.sum(case((is_payout, amount), else_=0)), 0),
            func.coalesce(func.sum(-amount), 0),
        )
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .join(LedgerAccount, LedgerAccount.id == Posting.account_id)
        .where(LedgerAccount.code == AccountCode.COMMISSION_PAYABLE.value)
        .group_by(LedgerAccount.party)
    ).all()
    return {
        uuid.UUID(party): CommissionSummary(int(in_period), int(through_end), int(paid), int(payable))
        for party, in_period, through_end, paid, payable in rows
    }


def commission_summary(session: Session, agent: CscAgent, period: Period) -> CommissionSummary:
    return commission_summaries(session, period).get(agent.id, CommissionSummary(0, 0, 0, 0))


def check_payable_period(period: Period, today: date | None = None) -> None:
    """Commission is paid for a month that has begun (usually one that has ended): a later month has
    earned nothing yet."""
    if period.first > (today or india_today()):
        raise ValidationFailed(
            f"{period.label} has not begun; pay commission for this month or an earlier one"
        )


@dataclass(frozen=True)
class PayoutOutcome:
    payout: CommissionPayout
    replayed: bool  # the reference had already been recorded: the first payout, nothing new written


def do_record_commission_payout(
    session: Session,
    agent: CscAgent,
    *,
    period: Period,
    amount_paise: int,
    reference: str,
    note: str = "",
) -> PayoutOutcome:
    """Record commission paid to the agent's bank account or UPI for `period`: Dr commission_payable(agent)
    / Cr bank. At most the commission earned up to the period's end and not yet paid (`commission_overpaid`
    otherwise, nothing written). The same payment reference again returns the first payout."""
    if isinstance(amount_paise, bool) or not isinstance(amount_paise, int) or amount_paise <= 0:
        raise ValidationFailed("a commission payout is a positive amount")
    ref = reference.strip().upper()
    if not 4 <= len(ref) <= MAX_PAYOUT_REFERENCE:
        raise ValidationFailed("give the bank UTR or UPI reference of the payout (4–64 characters)")
    check_payable_period(period)
    # One payout of an agent at a time (this lock also queues behind the agent's vends), so two back
    # office users paying the same month at once cannot both pay what is owed.
    session.execute(
        update(CscAgent)
        .where(CscAgent.id == agent.id)
        .values(version=CscAgent.version + 1)
        .execution_options(synchronize_session=False)
    )
    earlier = session.execute(
        select(CommissionPayout).where(CommissionPayout.reference == ref)
    ).scalar_one_or_none()
    if earlier is not None:
        if (earlier.agent_id, earlier.amount_paise, earlier.period) != (agent.id, amount_paise, str(period)):
            raise Conflict(
                f"payment reference {ref} is already recorded for another payout "
                f"({format_inr(earlier.amount_paise)} for {earlier.period})"
            )
        return PayoutOutcome(earlier, replayed=True)
    owed = commission_summary(session, agent, period).unpaid_through_end_paise
    if amount_paise > owed:
        raise CommissionOverpaid(
            f"CSC {agent.csc_id} is owed {format_inr(owed)} of commission up to the end of {period.label}; "
            f"{format_inr(amount_paise)} is more",
            owed_paise=owed,
            amount_paise=amount_paise,
        )
    entry = post_entry(
        session,
        idempotency_key=f"csc-commission-payout:{ref}",
        reference=ref,
        kind=PAYOUT_ENTRY_KIND,
        lines=[
            debit(account_for(session, AccountCode.COMMISSION_PAYABLE, str(agent.id)).id, amount_paise),
            credit(account_for(session, AccountCode.BANK).id, amount_paise),
        ],
        memo=f"commission of CSC {agent.csc_id} for {period}",
    ).entry
    actor = actor_of(session)
    payout = CommissionPayout(
        id=uuid7(),
        agent_id=agent.id,
        period=str(period),
        amount_paise=amount_paise,
        reference=ref,
        note=note.strip()[:300],
        paid_by=actor.label[:200],
        paid_by_id=actor.id,
        paid_at=utcnow(),
        ledger_entry_id=entry.id,
    )
    session.add(payout)
    session.flush()
    return PayoutOutcome(payout, replayed=False)


def list_commission_payouts(
    session: Session, *, agent: CscAgent | None = None, period: Period | None = None, limit: int = 100
) -> list[CommissionPayout]:
    query = select(CommissionPayout).order_by(CommissionPayout.paid_at.desc()).limit(limit)
    if agent is not None:
        query = query.where(CommissionPayout.agent_id == agent.id)
    if period is not None:
        query = query.where(CommissionPayout.period == str(period))
    return list(session.execute(query).scalars())
