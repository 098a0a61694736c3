"""Workflows: declared state machines whose every transition writes history and moves the SLA clock."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from citygas.platform import time as clock
from citygas.platform.context import Actor
from citygas.platform.errors import PermissionDenied, ValidationFailed
from citygas.platform.housekeeping import announce_overdue
from citygas.platform.outbox import OutboxEvent
from citygas.platform.uow import Database
from citygas.platform.workflow import WorkItem, do_transition, history, list_activity, start
from citygas.platform.workflow_rules import StateSpec, WorkflowError, t, workflow
from tests.conftest import make_tenant

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SURVEYOR = Actor(kind="staff", id=uuid.UUID(int=7), label="Sunil Surveyor")

# A small process of the shape the connection, job and ticket processes take.
COMPLAINT = workflow(
    "complaint",
    initial="open",
    states=[
        StateSpec("open", "Open", queue_role="care_agent", sla=timedelta(hours=4)),
        StateSpec("in_field", "With a technician", queue_role="technician", sla=timedelta(hours=24)),
        StateSpec("resolved", "Resolved", final=True),
        StateSpec("rejected", "Rejected", final=True),
    ],
    transitions=[
        t("dispatch", "open", "in_field", permission="customer.manage", label="send to the field"),
        t("resolve", ["open", "in_field"], "resolved", label="resolve"),
        t("reject", "open", "rejected", requires_reason=True, label="reject"),
    ],
)
ALL = frozenset({"customer.manage"})


@dataclass
class Complaint:
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    state: str = ""


def _open(db: Database, tenant_id: uuid.UUID) -> Complaint:
    clock.freeze(T0)
    complaint = Complaint()
    with db.unit_of_work(tenant=tenant_id, actor=SURVEYOR) as uow:
        start(uow.session, COMPLAINT, complaint, title="No gas at Flat 4B")
        uow.commit()
    return complaint


def test_a_definition_with_a_transition_to_an_unknown_state_is_refused() -> None:
    with pytest.raises(WorkflowError, match="unknown states"):
        workflow("bad", initial="a", states=[StateSpec("a")], transitions=[t("go", "a", "nowhere")])


def test_a_final_state_cannot_be_left() -> None:
    with pytest.raises(WorkflowError, match="leaves a final state"):
        workflow(
            "bad",
            initial="a",
            states=[StateSpec("a"), StateSpec("z", final=True)],
            transitions=[t("back", "z", "a")],
        )


def test_starting_opens_a_work_item_in_the_first_queue_with_its_clock(db: Database) -> None:
    tenant = make_tenant(db, "alpha", "ALP")
    complaint = _open(db, tenant.id)
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        item = uow.session.execute(select(WorkItem)).scalar_one()
        rows = history(uow.session, "complaint", complaint.id)
    assert (item.state, item.queue_role, item.due_at, item.closed) == (
        "open",
        "care_agent",
        T0 + timedelta(hours=4),
        False,
    )
    assert [(r.action, r.from_state, r.to_state, r.actor_label) for r in rows] == [
        ("start", None, "open", "Sunil Surveyor")
    ]


def test_a_transition_moves_the_row_writes_history_and_restarts_the_clock(db: Database) -> None:
    tenant = make_tenant(db, "alpha", "ALP")
    complaint = _open(db, tenant.id)
    clock.freeze(T0 + timedelta(hours=1))
    with db.unit_of_work(tenant=tenant.id, actor=SURVEYOR) as uow:
        do_transition(
            uow.session, COMPLAINT, complaint, "dispatch", permissions=ALL, reason="meter valve stuck"
        )
        uow.commit()
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        item = uow.session.execute(select(WorkItem)).scalar_one()
        rows = history(uow.session, "complaint", complaint.id)
        events = uow.session.execute(select(OutboxEvent.topic)).scalars().all()
    assert complaint.state == "in_field"
    assert (item.state, item.queue_role, item.due_at) == ("in_field", "technician", T0 + timedelta(hours=25))
    assert [(r.action, r.from_state, r.to_state, r.reason) for r in rows][-1] == (
        "dispatch",
        "open",
        "in_field",
        "meter valve stuck",
    )
    assert "workflow.complaint.dispatch" in events


def test_a_transition_not_allowed_from_the_current_state_changes_nothing(db: Database) -> None:
    tenant = make_tenant(db, "alpha", "ALP")
    complaint = _open(db, tenant.id)
    with db.unit_of_work(tenant=tenant.id, actor=SURVEYOR) as uow:
        do_transition(uow.session, COMPLAINT, complaint, "resolve", permissions=ALL)
        uow.commit()
    with (
        db.unit_of_work(tenant=tenant.id, actor=SURVEYOR) as uow,
        pytest.raises(ValidationFailed, match="cannot send to the field from Resolved; allowed from open"),
    ):
        do_transition(uow.session, COMPLAINT, complaint, "dispatch", permissions=ALL)
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        assert len(history(uow.session, "complaint", complaint.id)) == 2


def test_a_transition_needs_its_permission(db: Database) -> None:
    tenant = make_tenant(db, "alpha", "ALP")
    complaint = _open(db, tenant.id)
    with db.unit_of_work(tenant=tenant.id, actor=SURVEYOR) as uow, pytest.raises(PermissionDenied):
        do_transition(uow.session, COMPLAINT, complaint, "dispatch", permissions=frozenset())
    assert complaint.state == "open"


def test_a_rejection_needs_a_reason(db: Database) -> None:
    tenant = make_tenant(db, "alpha", "ALP")
    complaint = _open(db, tenant.id)
    with (
        db.unit_of_work(tenant=tenant.id, actor=SURVEYOR) as uow,
        pytest.raises(ValidationFailed, match="reject needs a reason"),
    ):
        do_transition(uow.session, COMPLAINT, complaint, "reject", permissions=ALL, reason="  ")


def test_the_activity_list_shows_a_roles_open_work_and_what_is_overdue(db: Database) -> None:
    tenant = make_tenant(db, "alpha", "ALP")
    late = _open(db, tenant.id)
    clock.freeze(T0 + timedelta(hours=3))
    fresh = Complaint()
    with db.unit_of_work(tenant=tenant.id, actor=SURVEYOR) as uow:
        start(uow.session, COMPLAINT, fresh, title="Meter display blank")
        uow.commit()
    done = _open(db, tenant.id)
    clock.freeze(T0 + timedelta(hours=5))
    with db.unit_of_work(tenant=tenant.id, actor=SURVEYOR) as uow:
        do_transition(uow.session, COMPLAINT, done, "resolve", permissions=ALL)
        uow.commit()
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        care = list_activity(uow.session, roles=frozenset({"care_agent"}), user_id=None)
        overdue = list_activity(uow.session, roles=frozenset({"care_agent"}), user_id=None, only_overdue=True)
        technician = list_activity(uow.session, roles=frozenset({"technician"}), user_id=None)
    assert [(a.item.entity_id, a.overdue) for a in care] == [(late.id, True), (fresh.id, False)]
    assert [a.item.entity_id for a in overdue] == [late.id]
    assert technician == []


def test_the_sla_watch_announces_each_overdue_item_once(db: Database) -> None:
    tenant = make_tenant(db, "alpha", "ALP")
    _open(db, tenant.id)
    clock.freeze(T0 + timedelta(hours=5))
    announce_overdue(db)
    announce_overdue(db)
    with db.system(read_only=True) as uow:
        count = uow.session.execute(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.topic == "workflow.overdue")
        ).scalar_one()
    assert count == 1
