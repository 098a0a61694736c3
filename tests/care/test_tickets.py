"""Tickets through their process: numbers, history, SLA clocks, refusals that change nothing, the gas-leak
lane's one ticket per connection under a double click, reopening, rating, the queue and the tenant wall."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from citygas.care import service, tasks
from citygas.care.models import Ticket, TicketMessage
from citygas.customers.models import Customer
from citygas.notifications.ports import LogNotifier
from citygas.platform import time as clock
from citygas.platform.context import Actor
from citygas.platform.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from citygas.platform.outbox import OutboxEvent
from citygas.platform.uow import Database
from citygas.platform.workflow import WorkflowTransition, WorkItem
from tests.care.conftest import ASHA_PHONE, Care, count, relay
from tests.vending.conftest import START
from tests.web.db_snapshot import differences, snapshot

MANAGE = frozenset({"ticket.manage", "ticket.view"})
HOUSEHOLD = frozenset({"customer.self"})
AGENT = Actor(kind="staff", id=None, label="Care Agent (alpha.care_agent)")
HOUSE = Actor(kind="customer", id=None, label="Asha Rao (ALP-C-00000001)")


def raise_ticket(
    db: Database, care: Care, category: str = "billing", customer: Customer | None = None
) -> str:
    with db.unit_of_work(tenant=care.alpha.id, actor=HOUSE) as uow:
        ticket = service.do_raise_ticket(
            uow.session,
            customer=customer or care.asha,
            category_code=category,
            description="The charges on my last top-up look wrong",
        )
        uow.commit()
        return ticket.number


def leak(db: Database, care: Care, customer: Customer | None = None) -> service.EmergencyOutcome:
    with db.unit_of_work(tenant=care.alpha.id, actor=HOUSE) as uow:
        outcome = service.do_raise_emergency(uow.session, customer=customer or care.asha)
        uow.commit()
        return outcome


def act(
    db: Database,
    care: Care,
    number: str,
    action: str,
    reason: str | None = None,
    permissions: frozenset[str] = MANAGE,
) -> None:
    with db.unit_of_work(tenant=care.alpha.id, actor=AGENT) as uow:
        ticket = service.get_ticket(uow.session, number, lock=True)
        service.do_ticket_action(uow.session, ticket, action, permissions=permissions, reason=reason)
        uow.commit()


def read(db: Database, care: Care, number: str) -> tuple[Ticket, WorkItem, list[WorkflowTransition]]:
    with db.unit_of_work(tenant=care.alpha.id, read_only=True) as uow:
        ticket = service.get_ticket(uow.session, number)
        return ticket, service.work_item_of(uow.session, ticket), service.ticket_history(uow.session, ticket)


def test_a_complaint_gets_a_gap_free_number_history_a_clock_and_an_sms(
    db: Database, care: Care, fresh_sms_log: LogNotifier
) -> None:
    first = raise_ticket(db, care)
    second = raise_ticket(db, care, "no_gas")

    ticket, item, steps = read(db, care, first)
    relay(db)
    assert (first, second) == ("ALP-T-00000001", "ALP-T-00000002")
    assert (ticket.state, ticket.priority, ticket.kind, ticket.consumer_number) == (
        "open",
        "normal",
        "complaint",
        "ALP-C-00000001",
    )
    assert [(s.action, s.from_state, s.to_state, s.actor_label) for s in steps] == [
        ("start", None, "open", HOUSE.label)
    ]
    assert item.due_at == START + timedelta(hours=24) == steps[0].due_at  # normal: respond within a day
    assert item.queue_role == "care_agent"
    assert read(db, care, second)[1].due_at == START + timedelta(hours=4)  # no gas: high priority
    texts = [m.text for m in fresh_sms_log.sent if m.to == ASHA_PHONE]
    assert any("ALP-T-00000001" in t and "Billing or charges" in t for t in texts)


def test_a_ticket_moves_through_its_process_and_every_step_is_in_the_history(
    db: Database, care: Care
) -> None:
    number = raise_ticket(db, care)
    clock.freeze(START + timedelta(hours=1))
    act(db, care, number, "acknowledge", "looking at the tariff")
    clock.freeze(START + timedelta(hours=2))
    act(db, care, number, "start")
    clock.freeze(START + timedelta(hours=3))
    act(db, care, number, "resolve", "VAT was applied correctly; explained on the phone")
    act(db, care, number, "close")

    ticket, item, steps = read(db, care, number)
    assert [(s.action, s.from_state, s.to_state) for s in steps] == [
        ("start", None, "open"),
        ("acknowledge", "open", "acknowledged"),
        ("start", "acknowledged", "in_progress"),
        ("resolve", "in_progress", "resolved"),
        ("close", "resolved", "closed"),
    ]
    assert steps[1].reason == "looking at the tariff"
    assert steps[1].actor_label == AGENT.label
    assert steps[1].due_at == START + timedelta(hours=72)  # resolution is due 72 h after raising
    assert ticket.acknowledged_at == START + timedelta(hours=1)
    assert ticket.resolution_note == "VAT was applied correctly; explained on the phone"
    assert (item.closed, item.due_at) == (True, None)


@pytest.mark.parametrize(
    ("setup", "action", "reason", "permissions", "refusal"),
    [
        ([], "close", None, MANAGE, ValidationFailed),  # cannot close an open ticket
        ([], "resolve", "  ", MANAGE, ValidationFailed),  # a resolution needs a note
        ([], "acknowledge", None, HOUSEHOLD, PermissionDenied),  # a household does not work tickets
        ([], "cancel", None, MANAGE, PermissionDenied),  # only the household cancels
        ([("acknowledge", None)], "cancel", None, HOUSEHOLD, ValidationFailed),  # too late to cancel
        ([("resolve", "fixed")], "acknowledge", None, MANAGE, ValidationFailed),
        ([("resolve", "fixed"), ("close", None)], "reopen", "still broken", HOUSEHOLD, ValidationFailed),
        ([], "escalate_to_mars", None, MANAGE, ValidationFailed),  # not an action at all
        ([], "acknowledge", "x" * 501, MANAGE, ValidationFailed),  # an over-long note
    ],
)
def test_a_refused_move_changes_nothing(
    db: Database,
    care: Care,
    setup: list[tuple[str, str | None]],
    action: str,
    reason: str | None,
    permissions: frozenset[str],
    refusal: type[DomainError],
) -> None:
    number = raise_ticket(db, care)
    for step, why in setup:
        act(db, care, number, step, why)
    before = snapshot(db)

    with pytest.raises(refusal):
        act(db, care, number, action, reason, permissions)

    assert differences(before, snapshot(db)) == {}


def test_the_i_smell_gas_button_makes_one_emergency_ticket_per_connection_while_it_is_live(
    db: Database, care: Care, fresh_sms_log: LogNotifier
) -> None:
    first = leak(db, care)
    again = leak(db, care)
    other_connection = leak(db, care, care.asha_second)
    next_complaint = raise_ticket(db, care)

    ticket, item, _ = read(db, care, first.ticket.number)
    assert (first.existing, again.existing, other_connection.existing) == (False, True, False)
    assert again.ticket.number == first.ticket.number == "ALP-T-00000001"
    assert other_connection.ticket.number == "ALP-T-00000002"
    assert next_complaint == "ALP-T-00000003"  # the second press took no number: no gap
    assert (ticket.priority, ticket.kind, ticket.category) == ("emergency", "emergency", "gas_leak")
    assert item.due_at == START + timedelta(minutes=30)
    with db.system(read_only=True) as uow:
        pages = (
            uow.session.execute(select(OutboxEvent).where(OutboxEvent.topic == service.EMERGENCY_TOPIC))
            .scalars()
            .all()
        )
    assert sorted(p.payload["number"] for p in pages) == ["ALP-T-00000001", "ALP-T-00000002"]
    assert pages[0].payload["respond_by"] == (START + timedelta(minutes=30)).isoformat()
    relay(db)
    assert sum("Gas leak reported" in m.text for m in fresh_sms_log.sent if m.to == ASHA_PHONE) == 2

    act(db, care, first.ticket.number, "resolve", "valve replaced, leak test passed")
    after = leak(db, care)
    assert (after.existing, after.ticket.number) == (False, "ALP-T-00000004")  # resolved: a new leak is new


def test_a_double_click_on_the_gas_button_from_two_threads_makes_one_ticket(db: Database, care: Care) -> None:
    barrier = threading.Barrier(2)
    outcomes: list[service.EmergencyOutcome] = []
    errors: list[BaseException] = []

    def press() -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(leak(db, care))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=press) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(o.existing for o in outcomes) == [False, True]
    assert {o.ticket.number for o in outcomes} == {"ALP-T-00000001"}
    assert count(db, care.alpha, Ticket) == 1
    assert raise_ticket(db, care) == "ALP-T-00000002"


def test_a_household_cannot_cancel_a_leak_report(db: Database, care: Care) -> None:
    number = leak(db, care).ticket.number
    before = snapshot(db)
    with pytest.raises(ValidationFailed, match="cannot be cancelled"):
        act(db, care, number, "cancel", None, HOUSEHOLD)
    assert differences(before, snapshot(db)) == {}


def test_a_resolved_ticket_reopens_within_seven_days_with_a_fresh_clock(db: Database, care: Care) -> None:
    number = raise_ticket(db, care, "no_gas")
    act(db, care, number, "resolve", "meter valve opened")
    clock.freeze(START + timedelta(days=6))
    act(db, care, number, "reopen", "no gas again this morning", HOUSEHOLD)

    ticket, item, steps = read(db, care, number)
    assert (ticket.state, ticket.resolved_at, ticket.clock_started_at) == (
        "open",
        None,
        START + timedelta(days=6),
    )
    assert item.due_at == START + timedelta(days=6, hours=4)
    assert steps[-1].reason == "no gas again this morning"


def test_reopening_after_seven_days_is_refused_and_the_job_closes_the_ticket(
    db: Database, care: Care
) -> None:
    number = raise_ticket(db, care)
    kept = raise_ticket(db, care)
    act(db, care, number, "resolve", "explained the bill")
    clock.freeze(START + timedelta(days=7, minutes=1))
    before = snapshot(db)
    with pytest.raises(ValidationFailed, match="within 7 days"):
        act(db, care, number, "reopen", "still not happy", HOUSEHOLD)
    assert differences(before, snapshot(db)) == {}

    closed = tasks.close_stale_resolved(db)

    ticket, item, steps = read(db, care, number)
    assert closed == 1
    assert (ticket.state, item.closed, steps[-1].reason) == ("closed", True, tasks.AUTO_CLOSE_REASON)
    assert read(db, care, kept)[0].state == "open"  # a live ticket is not touched


def test_a_rating_comes_only_after_resolution_and_only_once(db: Database, care: Care) -> None:
    number = raise_ticket(db, care)

    def rate(stars: str) -> None:
        with db.unit_of_work(tenant=care.alpha.id, actor=HOUSE) as uow:
            service.do_rate(uow.session, service.get_ticket(uow.session, number), stars=stars, comment="fast")
            uow.commit()

    before = snapshot(db)
    with pytest.raises(ValidationFailed, match="once it is resolved"):
        rate("5")
    assert differences(before, snapshot(db)) == {}
    act(db, care, number, "resolve", "refund issued")
    with pytest.raises(ValidationFailed, match="1 to 5"):
        rate("9")
    rate("4")
    with pytest.raises(ValidationFailed, match="already rated"):
        rate("1")

    ticket, _, steps = read(db, care, number)
    assert (ticket.rating, ticket.rating_comment) == (4, "fast")
    assert (steps[-1].action, steps[-1].reason) == ("rate", "4 of 5: fast")


def test_replies_reach_the_household_and_notes_stay_inside(
    db: Database, care: Care, fresh_sms_log: LogNotifier
) -> None:
    number = raise_ticket(db, care)
    agent_id = care.staff["alpha.care_agent"]
    with db.unit_of_work(tenant=care.alpha.id, actor=AGENT) as uow:
        ticket = service.get_ticket(uow.session, number)
        service.do_assign_to_me(uow.session, ticket, staff_id=agent_id, permissions=MANAGE)
        service.do_add_message(uow.session, ticket, public=True, body="We are checking.", permissions=MANAGE)
        service.do_add_message(uow.session, ticket, public=False, body="Caller was rude", permissions=MANAGE)
        with pytest.raises(ValidationFailed, match="empty"):
            service.do_add_message(uow.session, ticket, public=True, body="   ", permissions=MANAGE)
        with pytest.raises(PermissionDenied):
            service.do_add_message(uow.session, ticket, public=True, body="hi", permissions=HOUSEHOLD)
        uow.commit()
    relay(db)

    with db.unit_of_work(tenant=care.alpha.id, read_only=True) as uow:
        ticket = service.get_ticket(uow.session, number)
        seen = [m.body for m in service.ticket_messages(uow.session, ticket, include_internal=False)]
        everything = [m.body for m in service.ticket_messages(uow.session, ticket, include_internal=True)]
        item = service.work_item_of(uow.session, ticket)
        mine = service.care_queue(uow.session, assignee_id=agent_id)
    assert seen == ["We are checking."]
    assert everything == ["We are checking.", "Caller was rude"]
    assert (ticket.assignee_id, item.assignee_id, ticket.assignee_label) == (
        agent_id,
        agent_id,
        "Alpha Care_Agent",
    )
    assert [r.ticket.number for r in mine] == [number]
    assert any("New reply on your ticket" in m.text for m in fresh_sms_log.sent if m.to == ASHA_PHONE)
    assert not any("rude" in m.text for m in fresh_sms_log.sent)


def test_the_queue_shows_the_emergency_lane_first_then_overdue_then_by_due_time(
    db: Database, care: Care
) -> None:
    billing = raise_ticket(db, care)  # due +24 h
    clock.freeze(START + timedelta(hours=2))
    no_gas = raise_ticket(db, care, "no_gas", care.bina)  # due +6 h
    clock.freeze(START + timedelta(hours=3))
    gas = leak(db, care).ticket.number  # due +3.5 h
    resolved = raise_ticket(db, care, "app_problem")
    act(db, care, resolved, "resolve", "app updated")
    clock.freeze(START + timedelta(hours=7))  # the no-gas ticket is overdue, the leak too

    with db.unit_of_work(tenant=care.alpha.id, read_only=True) as uow:
        live = service.care_queue(uow.session)
        every = service.care_queue(uow.session, status="all")
        leaks = service.care_queue(uow.session, category="gas_leak")
        with pytest.raises(ValidationFailed):
            service.care_queue(uow.session, status="on_mars")

    assert [(r.ticket.number, r.overdue) for r in live] == [(gas, True), (no_gas, True), (billing, False)]
    assert [r.ticket.number for r in every][-1] == resolved
    assert [r.ticket.number for r in leaks] == [gas]


def test_another_cgd_sees_none_of_alphas_tickets(db: Database, care: Care) -> None:
    number = raise_ticket(db, care)
    leak(db, care)
    with db.unit_of_work(tenant=care.bravo.id, read_only=True) as uow:
        with pytest.raises(NotFound):
            service.get_ticket(uow.session, number)
        assert service.care_queue(uow.session, status="all") == []
        assert uow.session.execute(select(TicketMessage)).first() is None
        assert service.household_tickets(uow.session, ASHA_PHONE) == []
    with db.unit_of_work(tenant=care.bravo.id, actor=HOUSE) as uow:
        bravo_ticket = service.do_raise_ticket(
            uow.session,
            customer=care.bravo_customer,
            category_code="billing",
            description="Bravo's own complaint about charges",
        )
        uow.commit()
    assert bravo_ticket.number == "BRV-T-00000001"  # numbers are per CGD
