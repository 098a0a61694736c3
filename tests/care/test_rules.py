"""The pure rules of care: which ticket moves are allowed, SLA due times, reopening, ratings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from citygas.care import rules
from citygas.care.rules import TICKET, CareRuleError, Kind, Priority, State
from citygas.platform.workflow_rules import WorkflowError

T0 = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)

ALLOWED = {
    ("acknowledge", State.OPEN): State.ACKNOWLEDGED,
    ("start", State.OPEN): State.IN_PROGRESS,
    ("start", State.ACKNOWLEDGED): State.IN_PROGRESS,
    ("resolve", State.OPEN): State.RESOLVED,
    ("resolve", State.ACKNOWLEDGED): State.RESOLVED,
    ("resolve", State.IN_PROGRESS): State.RESOLVED,
    ("close", State.RESOLVED): State.CLOSED,
    ("reopen", State.RESOLVED): State.OPEN,
    ("cancel", State.OPEN): State.CANCELLED,
}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", ["acknowledge", "start", "resolve", "close", "reopen", "cancel"])
def test_each_action_is_allowed_from_exactly_its_declared_states(action: str, state: State) -> None:
    expected = ALLOWED.get((action, state))
    if expected is None:
        with pytest.raises(WorkflowError, match="cannot"):
            TICKET.check(action, state, reason="a reason")
    else:
        assert TICKET.check(action, state, reason="a reason").target == expected


def test_closed_and_cancelled_are_final_and_resolved_is_not() -> None:
    assert TICKET.state(State.CLOSED).final
    assert TICKET.state(State.CANCELLED).final
    assert not TICKET.state(State.RESOLVED).final  # it may still be reopened
    assert TICKET.available(State.CLOSED) == []
    assert TICKET.available(State.CANCELLED) == []


def test_resolving_and_reopening_need_a_reason_and_only_the_household_cancels() -> None:
    with pytest.raises(WorkflowError, match="needs a reason"):
        TICKET.check("resolve", State.IN_PROGRESS, reason="  ")
    with pytest.raises(WorkflowError, match="needs a reason"):
        TICKET.check("reopen", State.RESOLVED, reason=None)
    assert TICKET.transition("cancel").permission == rules.CUSTOMER_SELF
    assert TICKET.transition("reopen").permission is None  # either side
    for staff_action in ("acknowledge", "start", "resolve", "close"):
        assert TICKET.transition(staff_action).permission == rules.TICKET_MANAGE


def test_a_gas_leak_is_always_an_emergency_and_nothing_else_is() -> None:
    assert rules.category("gas_leak").priority is Priority.EMERGENCY
    assert [c.code for c in rules.CATEGORIES if c.priority is Priority.EMERGENCY] == ["gas_leak"]
    assert rules.GAS_LEAK not in rules.customer_categories(Kind.COMPLAINT)
    assert rules.GAS_LEAK not in rules.customer_categories(Kind.REQUEST)
    assert rules.category("payment_no_token").priority is Priority.HIGH
    with pytest.raises(CareRuleError):
        rules.category("leak; drop table")


@pytest.mark.parametrize(
    ("code", "respond", "resolve"),
    [
        ("gas_leak", timedelta(minutes=30), timedelta(hours=4)),
        ("no_gas", timedelta(hours=4), timedelta(hours=24)),
        ("billing", timedelta(hours=24), timedelta(hours=72)),
        ("meter_shift", timedelta(hours=24), timedelta(days=15)),
    ],
)
def test_due_times_follow_the_priority_and_run_from_raising(
    code: str, respond: timedelta, resolve: timedelta
) -> None:
    cat = rules.category(code)
    assert rules.due_at(cat, State.OPEN, clock_started_at=T0) == T0 + respond
    # Resolution is due from raising, not from acknowledging: a slow answer buys no extra time.
    assert rules.due_at(cat, State.ACKNOWLEDGED, clock_started_at=T0) == T0 + resolve
    assert rules.due_at(cat, State.IN_PROGRESS, clock_started_at=T0) == T0 + resolve
    for idle in (State.RESOLVED, State.CLOSED, State.CANCELLED):
        assert rules.due_at(cat, idle, clock_started_at=T0) is None


def test_reopening_is_open_for_seven_days_after_resolution() -> None:
    assert rules.may_reopen(T0, T0 + timedelta(days=7))
    assert not rules.may_reopen(T0, T0 + timedelta(days=7, seconds=1))
    assert not rules.may_reopen(None, T0)


@pytest.mark.parametrize("stars", ["0", "6", "", "4.5", "-1", "five", "１"])
def test_a_rating_is_one_to_five_stars(stars: str) -> None:
    with pytest.raises(CareRuleError, match="1 to 5"):
        rules.check_rating(stars, "")


def test_a_rating_keeps_its_comment_and_refuses_an_essay() -> None:
    assert rules.check_rating(" 4 ", "  quick fix  ") == (4, "quick fix")
    with pytest.raises(CareRuleError, match="under 500"):
        rules.check_rating("5", "x" * 501)


def test_a_description_must_say_something_and_not_everything() -> None:
    with pytest.raises(CareRuleError, match="at least 10"):
        rules.check_description("   no gas  ")
    with pytest.raises(CareRuleError, match="under 2000"):
        rules.check_description("x" * 2001)
    assert rules.check_description("  No gas since morning  ") == "No gas since morning"


def test_the_queue_puts_emergencies_first_then_overdue_then_the_earliest_due() -> None:
    now = T0 + timedelta(hours=30)
    rows = {
        "normal-due-later": rules.queue_order("normal", T0 + timedelta(hours=40), T0, now),
        "normal-overdue": rules.queue_order("normal", T0 + timedelta(hours=24), T0, now),
        "high-due-soon": rules.queue_order("high", T0 + timedelta(hours=31), T0, now),
        "emergency-due-later": rules.queue_order("emergency", T0 + timedelta(hours=50), T0, now),
    }
    assert sorted(rows, key=rows.__getitem__) == [
        "emergency-due-later",
        "normal-overdue",
        "high-due-soon",
        "normal-due-later",
    ]
