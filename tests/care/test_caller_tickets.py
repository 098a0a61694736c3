"""A care agent raises a ticket for a household on the phone (`/ops/tickets/new`): the caller is found by
consumer number or registered mobile, a leak goes the emergency way, and every refusal says what to ask
the caller next and changes nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from citygas.care.models import Ticket
from citygas.notifications.ports import LogNotifier
from citygas.platform.audit import AuditEntry
from citygas.platform.uow import Database
from tests.care.conftest import ASHA_PHONE, BINA_PHONE, BRAVO_PHONE, Care, csrf, relay, staff_client
from tests.web.db_snapshot import differences, snapshot

RAISED_BY = "Alpha Care_Agent (alpha.care_agent)"  # the agent who took the call
SAYS = "No gas since this morning, the stove will not light"


def _raise(agent: TestClient, **form: str) -> tuple[int, str, str]:
    token = csrf(agent, "/ops/tickets/new")
    response = agent.post("/ops/tickets/new", data={"csrf_token": token, **form}, follow_redirects=False)
    return response.status_code, response.headers.get("location", ""), response.text


def _tickets(db: Database, care: Care) -> list[Ticket]:
    with db.unit_of_work(tenant=care.alpha.id, read_only=True) as uow:
        return list(uow.session.execute(select(Ticket).order_by(Ticket.number)).scalars())


def test_the_agent_raises_a_ticket_by_consumer_number_and_the_household_gets_an_sms(
    app: TestClient, db: Database, care: Care, fresh_sms_log: LogNotifier
) -> None:
    agent = staff_client(app, "alpha.care_agent")

    status, location, _ = _raise(agent, caller="alp-c-00000001", category="no_gas", description=SAYS)

    (ticket,) = _tickets(db, care)
    assert (status, location) == (303, f"/ops/tickets/{ticket.number}")
    assert (ticket.consumer_number, ticket.channel, ticket.category) == ("ALP-C-00000001", "care", "no_gas")
    assert ticket.raised_by == RAISED_BY
    with db.unit_of_work(tenant=care.alpha.id, read_only=True) as uow:
        reasons = set(
            uow.session.execute(
                select(AuditEntry.reason).where(AuditEntry.entity_type == "care_ticket")
            ).scalars()
        )
    assert any(r and r.startswith("raised for the caller by") for r in reasons)
    page = agent.get(location).text
    assert ticket.number in page
    assert "(care)" in page
    relay(db)
    assert any(ticket.number in m.text for m in fresh_sms_log.sent if m.to == ASHA_PHONE)


def test_a_phone_with_one_connection_finds_it(app: TestClient, db: Database, care: Care) -> None:
    agent = staff_client(app, "alpha.care_agent")

    status, _, _ = _raise(agent, caller=f"+91 {BINA_PHONE}", category="billing", description=SAYS)

    assert status == 303
    assert [t.consumer_number for t in _tickets(db, care)] == ["ALP-C-00000002"]


@pytest.mark.parametrize(
    ("caller", "category", "description", "status", "message"),
    [
        (
            ASHA_PHONE,
            "no_gas",
            SAYS,
            422,
            "has 2 connections (ALP-C-00000001, ALP-C-00000003): ask which one",
        ),
        ("ALP-C-00000099", "no_gas", SAYS, 404, "No connection ALP-C-00000099"),
        ("9000000000", "no_gas", SAYS, 404, "No connection is registered with 9000000000"),
        ("BRV-C-00000001", "no_gas", SAYS, 404, "No connection BRV-C-00000001"),  # another CGD's
        (BRAVO_PHONE, "no_gas", SAYS, 404, f"No connection is registered with {BRAVO_PHONE}"),
        ("", "no_gas", SAYS, 422, "Ask the caller for their consumer number"),
        ("ALP-C-00000001", "", SAYS, 422, ""),
        ("ALP-C-00000001", "no_gas", "gas", 422, "at least"),
    ],
    ids=[
        "phone-with-two",
        "unknown-number",
        "unknown-phone",
        "other-cgds-number",
        "other-cgds-phone",
        "nobody",
        "no-category",
        "short",
    ],
)
def test_a_ticket_that_cannot_be_raised_says_what_to_ask_and_changes_nothing(
    app: TestClient,
    db: Database,
    care: Care,
    caller: str,
    category: str,
    description: str,
    status: int,
    message: str,
) -> None:
    agent = staff_client(app, "alpha.care_agent")
    csrf(agent, "/ops/tickets/new")  # the form's page, before the snapshot
    before = snapshot(db)

    got, _, page = _raise(agent, caller=caller, category=category, description=description)

    assert got == status
    assert message in page
    assert page.count('class="error" role="alert"') == 1  # said once, above the form
    assert 'data-testid="caller-ticket-form"' in page
    assert f'value="{caller}"' in page  # what the agent typed is kept
    assert differences(before, snapshot(db)) == {}


def test_a_leak_on_the_phone_goes_the_emergency_way_once(app: TestClient, db: Database, care: Care) -> None:
    agent = staff_client(app, "alpha.care_agent")

    first = _raise(agent, caller="ALP-C-00000001", category="gas_leak", description="Smell near the meter")
    again = _raise(agent, caller="ALP-C-00000001", category="gas_leak", description="Calling again")

    (ticket,) = _tickets(db, care)
    assert (ticket.priority, ticket.channel) == ("emergency", "care")
    assert first[:2] == again[:2] == (303, f"/ops/tickets/{ticket.number}")


@pytest.mark.parametrize("role", ["csc_agent", "field_supervisor"])
def test_only_care_may_raise_tickets_for_callers(
    app: TestClient, db: Database, care: Care, role: str
) -> None:
    other = staff_client(app, f"alpha.{role}")
    before = snapshot(db)

    page = other.get("/ops/tickets/new")
    posted = other.post(
        "/ops/tickets/new",
        data={"caller": "ALP-C-00000001", "category": "no_gas", "description": SAYS},
        follow_redirects=False,
    )

    assert page.status_code == 403
    assert posted.status_code == 403
    assert differences(before, snapshot(db)) == {}
