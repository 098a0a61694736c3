"""CSC agents: float top-ups approved by the back office, vends from the float with commission, no vend
beyond the float (even under concurrency), one vend per form, the daily statement, and a token the
meter accepts."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from citygas.ledger.models import JournalEntry
from citygas.ledger.rules import AccountCode
from citygas.ledger.service import get_balance, rebuild_balances
from citygas.payments.csc.models import CscVend, FloatTopup
from citygas.payments.csc.rules import CommissionInputError, Period, commission_from_form
from citygas.payments.csc.service import (
    AgentInactive,
    CommissionOverpaid,
    FloatExhausted,
    FourEyesRequired,
    PayoutOutcome,
    commission_summary,
    do_approve_float_topup,
    do_csc_vend,
    do_record_commission_payout,
    do_reject_float_topup,
    do_request_float_topup,
    do_set_agent_active,
    float_topup_history,
    float_topup_requesters,
    get_float_topup,
    get_statement,
    list_commission_payouts,
)
from citygas.platform import time as clock
from citygas.platform.audit import AuditEntry
from citygas.platform.context import Actor
from citygas.platform.errors import Conflict, ValidationFailed
from citygas.platform.uow import Database
from citygas.platform.workflow import WorkflowTransition
from citygas.sts import AcceptOutcome
from citygas.tariffs.rules import commission_for
from citygas.vending.models import Vend
from tests.meters.test_registry import MASTER
from tests.receipts.csc_world import APPROVER, NOW, OFFICE, Csc, csc, float_of, fund, simulated_meter

__all__ = ["csc"]  # the fixture, imported for pytest


def vend(db: Database, c: Csc, amount: int, ref: str = "form-0001", consumer: str = "ALP-C-00000001") -> Vend:
    with db.unit_of_work(tenant=c.tenant.id) as uow:
        outcome = do_csc_vend(uow.session, c.agent(uow.session), consumer, amount, ref, master_key=MASTER)
        uow.commit()
        return outcome.vend


def counts(db: Database, c: Csc) -> tuple[int, int, int, int]:
    with db.unit_of_work(tenant=c.tenant.id, read_only=True) as uow:
        s = uow.session
        return (
            s.execute(select(func.count()).select_from(Vend)).scalar_one(),
            s.execute(select(func.count()).select_from(CscVend)).scalar_one(),
            s.execute(select(func.count()).select_from(JournalEntry)).scalar_one(),
            s.execute(select(func.count()).select_from(AuditEntry)).scalar_one(),
        )


# --- float top-ups ---------------------------------------------------------------------------------


def test_an_approved_float_topup_moves_money_from_the_bank_into_the_float_with_history(
    db: Database, csc: Csc
) -> None:
    with db.unit_of_work(tenant=csc.tenant.id, actor=OFFICE) as uow:
        topup = do_request_float_topup(
            uow.session,
            csc.agent(uow.session),
            amount_paise=1_000_00,
            reference="utr 778",
            requested_by="VLE",
        )
        uow.commit()
    assert (topup.state, topup.reference, float_of(db, csc)) == ("requested", "UTR 778", 0)

    from citygas.payments.csc.service import do_approve_float_topup, get_float_topup

    with db.unit_of_work(tenant=csc.tenant.id, actor=OFFICE) as uow:
        do_approve_float_topup(uow.session, get_float_topup(uow.session, topup.id), permissions=APPROVER)
        uow.commit()
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        row = uow.session.get(FloatTopup, topup.id)
        assert row is not None
        steps = [
            (h.action, h.from_state, h.to_state, h.actor_label) for h in float_topup_history(uow.session, row)
        ]
        bank = get_balance(uow.session, AccountCode.BANK)
    assert (row.state, row.ledger_entry_id is not None) == ("approved", True)
    assert (float_of(db, csc), bank) == (1_000_00, 1_000_00)
    assert steps == [
        ("start", None, "requested", "Back Office"),
        ("approve", "requested", "approved", "Back Office"),
    ]


def test_a_rejected_topup_needs_a_reason_and_leaves_the_float_alone(db: Database, csc: Csc) -> None:
    with db.unit_of_work(tenant=csc.tenant.id, actor=OFFICE) as uow:
        topup = do_request_float_topup(
            uow.session, csc.agent(uow.session), amount_paise=5_000_00, reference="UTR9", requested_by="VLE"
        )
        uow.commit()
    with db.unit_of_work(tenant=csc.tenant.id, actor=OFFICE) as uow:
        row = uow.session.get(FloatTopup, topup.id)
        assert row is not None
        with pytest.raises(ValidationFailed, match="reject the top-up needs a reason"):
            do_reject_float_topup(uow.session, row, permissions=APPROVER, reason=" ")
    with db.unit_of_work(tenant=csc.tenant.id, actor=OFFICE) as uow:
        row = uow.session.get(FloatTopup, topup.id)
        assert row is not None
        do_reject_float_topup(
            uow.session, row, permissions=APPROVER, reason="no such credit on the statement"
        )
        uow.commit()
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        row = uow.session.get(FloatTopup, topup.id)
        assert row is not None
        steps = [(h.action, h.to_state, h.reason) for h in float_topup_history(uow.session, row)]
        bank = get_balance(uow.session, AccountCode.BANK)
    assert (row.state, float_of(db, csc), bank) == ("rejected", 0, 0)
    assert steps == [("start", "requested", None), ("reject", "rejected", "no such credit on the statement")]


def test_an_agent_cannot_approve_a_topup(db: Database, csc: Csc) -> None:
    with db.unit_of_work(tenant=csc.tenant.id) as uow:
        topup = do_request_float_topup(
            uow.session, csc.agent(uow.session), amount_paise=100_00, reference="UTR5", requested_by="VLE"
        )
        from citygas.payments.csc.service import do_approve_float_topup

        with pytest.raises(Exception, match="you may not approve the top-up"):
            do_approve_float_topup(uow.session, topup, permissions=frozenset({"agent.vend"}))


def test_one_bank_reference_tops_up_one_float_once(db: Database, csc: Csc) -> None:
    fund(db, csc, 1_000_00, reference="UTR42")
    with db.unit_of_work(tenant=csc.tenant.id) as uow, pytest.raises(Conflict, match="UTR42 is already"):
        do_request_float_topup(
            uow.session, csc.agent(uow.session), amount_paise=1_000_00, reference="utr42", requested_by="VLE"
        )
    assert float_of(db, csc) == 1_000_00


# --- vends from the float -----------------------------------------------------------------------------


def test_a_vend_debits_the_float_and_earns_the_agent_commission(db: Database, csc: Csc) -> None:
    fund(db, csc, 1_000_00)
    made = vend(db, csc, 500_00)
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        s = uow.session
        payable = get_balance(s, AccountCode.COMMISSION_PAYABLE, str(csc.agent_id))
        expense = get_balance(s, AccountCode.COMMISSION_EXPENSE)
        row = s.execute(select(CscVend)).scalar_one()
    assert (made.channel, made.source_party, made.amount_paise) == ("csc", str(csc.agent_id), 500_00)
    assert float_of(db, csc) == 500_00
    assert (row.commission_paise, payable, expense) == (750, 750, 750)  # 1.5 % of ₹500, under the ₹20 cap


def test_a_vend_beyond_the_float_is_refused_and_nothing_changes(db: Database, csc: Csc) -> None:
    fund(db, csc, 400_00)
    before = counts(db, csc)
    with db.unit_of_work(tenant=csc.tenant.id) as uow, pytest.raises(FloatExhausted) as refused:
        do_csc_vend(
            uow.session, csc.agent(uow.session), "ALP-C-00000001", 500_00, "form-0002", master_key=MASTER
        )
    assert refused.value.code == "float_exhausted"
    assert refused.value.extra == {"float_paise": 400_00, "amount_paise": 500_00}
    assert counts(db, csc) == before
    assert float_of(db, csc) == 400_00


def test_the_same_form_submitted_twice_vends_once(db: Database, csc: Csc) -> None:
    fund(db, csc, 1_000_00)
    first = vend(db, csc, 300_00, ref="double-click-1")
    with db.unit_of_work(tenant=csc.tenant.id) as uow:
        again = do_csc_vend(
            uow.session, csc.agent(uow.session), "ALP-C-00000001", 300_00, "double-click-1", master_key=MASTER
        )
        uow.commit()
    assert (again.replayed, again.vend.id, again.vend.receipt_number) == (
        True,
        first.id,
        first.receipt_number,
    )
    assert counts(db, csc)[:2] == (1, 1)
    assert float_of(db, csc) == 700_00


def test_the_same_form_for_another_amount_is_a_conflict_and_nothing_changes(db: Database, csc: Csc) -> None:
    fund(db, csc, 1_000_00)
    vend(db, csc, 300_00, ref="form-0003")
    before = counts(db, csc)
    with db.unit_of_work(tenant=csc.tenant.id) as uow, pytest.raises(Conflict, match="already used"):
        do_csc_vend(
            uow.session, csc.agent(uow.session), "ALP-C-00000001", 301_00, "form-0003", master_key=MASTER
        )
    assert (counts(db, csc), float_of(db, csc)) == (before, 700_00)


def test_a_suspended_agent_cannot_vend(db: Database, csc: Csc) -> None:
    fund(db, csc, 1_000_00)
    with db.unit_of_work(tenant=csc.tenant.id) as uow:
        do_set_agent_active(uow.session, csc.agent(uow.session), active=False)
        uow.commit()
    with db.unit_of_work(tenant=csc.tenant.id) as uow, pytest.raises(AgentInactive, match="suspended"):
        do_csc_vend(
            uow.session, csc.agent(uow.session), "ALP-C-00000001", 100_00, "form-0004", master_key=MASTER
        )
    assert float_of(db, csc) == 1_000_00


@pytest.mark.slow
def test_two_threads_vending_beyond_the_float_get_exactly_the_affordable_vends(
    db: Database, csc: Csc
) -> None:
    # Given ₹1,000 of float and two counters each trying two ₹400 vends (₹1,600 in all)
    fund(db, csc, 1_000_00)
    start = threading.Barrier(2)
    done: list[str] = []
    refused: list[str] = []
    errors: list[BaseException] = []

    def counter(name: str) -> None:
        try:
            start.wait()
            for n in range(2):
                ref = f"thread-{name}-{n}"
                with db.unit_of_work(tenant=csc.tenant.id) as uow:
                    try:
                        do_csc_vend(
                            uow.session,
                            csc.agent(uow.session),
                            "ALP-C-00000001",
                            400_00,
                            ref,
                            master_key=MASTER,
                        )
                    except FloatExhausted:
                        refused.append(ref)
                        continue
                    uow.commit()
                    done.append(ref)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=counter, args=(name,)) for name in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # Then exactly two vends went through, two were refused, and the float never went below zero
    assert errors == []
    assert (len(done), len(refused)) == (2, 2)
    assert float_of(db, csc) == 200_00
    assert counts(db, csc)[:2] == (2, 2)


# --- commission units ---------------------------------------------------------------------------------


def test_commission_typed_as_a_percentage_cannot_become_a_hundred_times_bigger() -> None:
    assert commission_from_form("percent", percent="10").percent_bp == 1_000
    assert commission_from_form("percent", percent="1.5 %", cap_rupees="20").cap_paise == 2_000
    assert commission_from_form("flat", flat_rupees="5").flat_paise == 500
    with pytest.raises(CommissionInputError, match="10 % is written 10, not 1000"):
        commission_from_form("percent", percent="1000")
    with pytest.raises(CommissionInputError, match="outside 0 < p ≤ 100"):
        commission_from_form("percent", percent="0")
    with pytest.raises(CommissionInputError, match="finer than one basis point"):
        commission_from_form("percent", percent="0.005")
    with pytest.raises(CommissionInputError, match="not a percentage"):
        commission_from_form("percent", percent="ten")
    rule = commission_from_form("percent", percent="1.5", cap_rupees="20")
    assert (commission_for(rule, 500_00), commission_for(rule, 2_000_00)) == (750, 2_000)


# --- the statement ------------------------------------------------------------------------------------


def test_the_daily_statement_adds_up_to_the_float(db: Database, csc: Csc) -> None:
    # Day one: ₹1,000 in, vends of ₹200 and ₹300
    fund(db, csc, 1_000_00, reference="UTR1")
    vend(db, csc, 200_00, ref="day1-vend-a")
    vend(db, csc, 300_00, ref="day1-vend-b")
    # Day two: ₹250 in, one vend of ₹100
    clock.freeze(NOW + timedelta(days=1))
    fund(db, csc, 250_00, reference="UTR2")
    vend(db, csc, 100_00, ref="day2-vend-a")
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        agent = csc.agent(uow.session)
        one = get_statement(uow.session, agent, NOW.date())
        two = get_statement(uow.session, agent, (NOW + timedelta(days=1)).date())
    assert (one.opening_float_paise, one.topups_paise, one.topup_count) == (0, 1_000_00, 1)
    assert (one.vends_paise, one.vend_count, one.commission_paise) == (500_00, 2, 300 + 450)
    assert one.closing_float_paise == 500_00
    assert (two.opening_float_paise, two.topups_paise, two.vends_paise, two.commission_paise) == (
        500_00,
        250_00,
        100_00,
        150,
    )
    assert two.closing_float_paise == float_of(db, csc) == 650_00


# --- the token works ----------------------------------------------------------------------------------


def test_the_token_from_a_csc_vend_credits_the_meter_exactly_the_gas_credit(db: Database, csc: Csc) -> None:
    fund(db, csc, 1_000_00)
    made = vend(db, csc, 500_00)
    meter = simulated_meter(db, csc)
    outcomes = [meter.enter_token(t["token"]).outcome for t in made.tokens]
    assert outcomes[-1] is AcceptOutcome.CREDIT_ADDED
    assert meter.credit == made.gas_credit_paise
    assert made.gas_credit_paise > 0


def test_percent_commission_is_stored_in_basis_points(db: Database, csc: Csc) -> None:
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        agent = csc.agent(uow.session)
    assert (agent.commission_percent_bp, agent.commission_flat_paise, agent.commission_cap_paise) == (
        150,
        None,
        2_000,
    )
    assert Decimal(agent.commission_percent_bp or 0) / 100 == Decimal("1.5")


# --- four eyes on float top-ups ---------------------------------------------------------------------


def _staff(label: str) -> Actor:
    return Actor(kind="staff", id=uuid.uuid4(), label=label)


def _transitions(db: Database, c: Csc) -> int:
    with db.unit_of_work(tenant=c.tenant.id, read_only=True) as uow:
        return uow.session.execute(select(func.count()).select_from(WorkflowTransition)).scalar_one()


def test_the_person_who_entered_a_topup_cannot_approve_it_and_nothing_changes(db: Database, csc: Csc) -> None:
    clerk = _staff("Clerk")
    with db.unit_of_work(tenant=csc.tenant.id, actor=clerk) as uow:
        topup = do_request_float_topup(
            uow.session,
            csc.agent(uow.session),
            amount_paise=1_000_00,
            reference="UTR4E1",
            requested_by="Clerk",
        )
        uow.commit()
    before = (counts(db, csc), _transitions(db, csc))
    with db.unit_of_work(tenant=csc.tenant.id, actor=clerk) as uow:
        row = get_float_topup(uow.session, topup.id)
        with pytest.raises(FourEyesRequired, match="another person with float approval") as refused:
            do_approve_float_topup(uow.session, row, permissions=APPROVER)
        uow.commit()  # even a commit after the refusal writes nothing
    assert refused.value.code == "four_eyes_required"
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        row = get_float_topup(uow.session, topup.id)
        assert (row.state, row.ledger_entry_id, row.decided_at) == ("requested", None, None)
    assert (float_of(db, csc), (counts(db, csc), _transitions(db, csc))) == (0, before)


def test_a_second_person_approves_and_the_history_names_both(db: Database, csc: Csc) -> None:
    clerk, checker = _staff("Clerk"), _staff("Checker")
    with db.unit_of_work(tenant=csc.tenant.id, actor=clerk) as uow:
        topup = do_request_float_topup(
            uow.session, csc.agent(uow.session), amount_paise=700_00, reference="UTR4E2", requested_by="Clerk"
        )
        uow.commit()
    with db.unit_of_work(tenant=csc.tenant.id, actor=checker) as uow:
        do_approve_float_topup(uow.session, get_float_topup(uow.session, topup.id), permissions=APPROVER)
        uow.commit()
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        row = get_float_topup(uow.session, topup.id)
        steps = [(h.action, h.actor_id, h.actor_label) for h in float_topup_history(uow.session, row)]
        requester = float_topup_requesters(uow.session, [row.id])[row.id]
    assert steps == [("start", clerk.id, "Clerk"), ("approve", checker.id, "Checker")]
    assert (
        requester.id,
        requester.is_person("staff", clerk.id),
        requester.is_person("api_key", clerk.id),
    ) == (
        clerk.id,
        True,
        False,
    )
    assert float_of(db, csc) == 700_00


# --- commission payouts ------------------------------------------------------------------------------

DEC, JAN = Period(2026, 12), Period(2027, 1)


def _earn(db: Database, c: Csc) -> None:
    """₹6 + ₹15 commission on vends of 4 Dec, and ₹6 on a vend of 5 Jan (1.5 %, capped at ₹20)."""
    fund(db, c, 3_000_00)
    vend(db, c, 400_00, ref="form-dec-1")
    vend(db, c, 1_000_00, ref="form-dec-2")
    clock.freeze(NOW + timedelta(days=32))
    vend(db, c, 400_00, ref="form-jan-1")


def pay(db: Database, c: Csc, period: Period, amount: int, reference: str) -> PayoutOutcome:
    with db.unit_of_work(tenant=c.tenant.id, actor=OFFICE) as uow:
        outcome = do_record_commission_payout(
            uow.session, c.agent(uow.session), period=period, amount_paise=amount, reference=reference
        )
        uow.commit()
        return outcome


def payable(db: Database, c: Csc) -> tuple[int, int]:
    with db.unit_of_work(tenant=c.tenant.id, read_only=True) as uow:
        s = uow.session
        return get_balance(s, AccountCode.COMMISSION_PAYABLE, str(c.agent_id)), get_balance(
            s, AccountCode.BANK
        )


def test_a_payout_pays_the_commission_earned_up_to_the_month_end_once(db: Database, csc: Csc) -> None:
    _earn(db, csc)
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        dec = commission_summary(uow.session, csc.agent(uow.session), DEC)
    assert (dec.earned_in_period_paise, dec.earned_through_end_paise, dec.paid_paise, dec.payable_paise) == (
        2_100,
        2_100,
        0,
        2_700,
    )
    assert dec.unpaid_through_end_paise == 2_100

    first = pay(db, csc, DEC, 2_100, "utr-pay-0001")
    assert (first.replayed, first.payout.reference, first.payout.period, first.payout.paid_by) == (
        False,
        "UTR-PAY-0001",
        "2026-12",
        "Back Office",
    )
    assert payable(db, csc) == (600, 3_000_00 - 2_100)
    before = counts(db, csc)
    # The same payment recorded again (a resubmitted form): the first payout, no second posting.
    again = pay(db, csc, DEC, 2_100, "UTR-PAY-0001")
    assert (again.replayed, again.payout.id) == (True, first.payout.id)
    assert (counts(db, csc), payable(db, csc)) == (before, (600, 3_000_00 - 2_100))
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        entry = uow.session.get(JournalEntry, first.payout.ledger_entry_id)
        assert entry is not None
        assert (entry.kind, entry.reference) == ("csc_commission_payout", "UTR-PAY-0001")
        jan = commission_summary(uow.session, csc.agent(uow.session), JAN)
        listed = [p.id for p in list_commission_payouts(uow.session, agent=csc.agent(uow.session))]
    assert (jan.earned_in_period_paise, jan.paid_paise, jan.unpaid_through_end_paise) == (600, 2_100, 600)
    assert listed == [first.payout.id]
    pay(db, csc, JAN, 600, "UPI-JAN-0001")
    assert payable(db, csc) == (0, 3_000_00 - 2_700)
    assert rebuild_balances(db, repair=False).ok


@pytest.mark.parametrize(
    ("period", "amount", "reference", "error", "message"),
    [
        (DEC, 2_101, "UTR-PAY-0002", CommissionOverpaid, r"owed ₹21\.00 .* up to the end of December 2026"),
        (DEC, -100, "UTR-PAY-0002", ValidationFailed, "positive amount"),
        (DEC, 0, "UTR-PAY-0002", ValidationFailed, "positive amount"),
        (DEC, True, "UTR-PAY-0002", ValidationFailed, "positive amount"),
        (DEC, 100, " x ", ValidationFailed, "UTR or UPI reference"),
        (Period(2027, 2), 100, "UTR-PAY-0002", ValidationFailed, "February 2027 has not begun"),
    ],
)
def test_a_bad_payout_is_refused_and_changes_nothing(
    db: Database, csc: Csc, period: Period, amount: int, reference: str, error: type[Exception], message: str
) -> None:
    _earn(db, csc)
    before = (counts(db, csc), payable(db, csc))
    with pytest.raises(error, match=message):
        pay(db, csc, period, amount, reference)
    assert (counts(db, csc), payable(db, csc)) == before


def test_a_paid_month_cannot_be_paid_again_and_a_reference_pays_one_payout(db: Database, csc: Csc) -> None:
    _earn(db, csc)
    pay(db, csc, DEC, 1_000, "UTR-PAY-0003")  # part of December
    before = (counts(db, csc), payable(db, csc))
    with pytest.raises(Conflict, match="UTR-PAY-0003 is already recorded for another payout"):
        pay(db, csc, DEC, 1_100, "UTR-PAY-0003")
    with pytest.raises(CommissionOverpaid, match=r"owed ₹11\.00"):
        pay(db, csc, DEC, 1_101, "UTR-PAY-0004")
    assert (counts(db, csc), payable(db, csc)) == before
    pay(db, csc, DEC, 1_100, "UTR-PAY-0004")
    with pytest.raises(CommissionOverpaid, match=r"owed ₹0\.00"):
        pay(db, csc, DEC, 1, "UTR-PAY-0005")
    assert payable(db, csc)[0] == 600  # January's commission waits for January's payout
    assert rebuild_balances(db, repair=False).ok
