"""The Help tab of the customer app and the care centre's pages, over HTTP: the 'I smell gas' lane, raising
and following a ticket, who sees what, and forms with bad input that change nothing."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import update

from citygas.care.models import Ticket
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import Database
from tests.care.conftest import Care, count, csrf, household_client, staff_client
from tests.web.db_snapshot import differences, snapshot


def raise_via_form(client: TestClient, **form: str) -> tuple[int, str, str]:
    response = client.post(
        "/app/help/new", data={**form, "csrf_token": csrf(client, "/app/help/new")}, follow_redirects=False
    )
    return response.status_code, response.headers.get("location", ""), response.text


def press_gas_button(client: TestClient, consumer_number: str) -> str:
    response = client.post(
        "/app/help/gas/report",
        data={"consumer_number": consumer_number, "csrf_token": csrf(client, "/app/help/gas")},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


def test_the_gas_page_shows_the_safety_steps_and_the_emergency_number_at_once(
    app: TestClient, db: Database, care: Care
) -> None:
    with db.system() as uow:
        uow.session.execute(
            update(Tenant).where(Tenant.id == care.alpha.id).values(emergency_number="1800-111-222")
        )
        uow.commit()
    asha = household_client(app, db, care.asha)

    help_page = asha.get("/app/help")
    page = asha.get("/app/help/gas")

    assert 'data-testid="gas-button"' in help_page.text
    assert 'href="/app/help/gas"' in help_page.text
    assert help_page.text.index('data-testid="gas-button"') < help_page.text.index("<h1>")  # at the top
    assert page.status_code == 200
    steps = page.text[page.text.index('data-testid="safety-steps"') : page.text.index("</ol>")]
    for words in ("switch", "flame", "windows", "valve", "Leave", "call"):
        assert words in steps
    assert 'href="tel:1800-111-222" data-testid="emergency-number"' in page.text
    assert page.text.index("safety-steps") < page.text.index("raise-emergency")  # steps before the button
    assert "<script" not in page.text.split("</head>")[1]  # nothing to load after the page itself
    # One button per connection of the household: Asha has two.
    assert page.text.count('data-testid="raise-emergency"') == 2


def test_pressing_the_gas_button_twice_shows_the_same_ticket(
    app: TestClient, db: Database, care: Care
) -> None:
    asha = household_client(app, db, care.asha)

    first = press_gas_button(asha, "ALP-C-00000001")
    second = press_gas_button(asha, "ALP-C-00000001")
    ticket_page = asha.get(first)
    gas_page = asha.get("/app/help/gas")

    assert first == second == "/app/help/ALP-T-00000001"
    assert count(db, care.alpha, Ticket) == 1
    assert "Our emergency team is on its way" in ticket_page.text
    assert 'data-testid="emergency-number"' in ticket_page.text
    assert 'data-testid="existing-emergency"' in gas_page.text
    assert gas_page.text.count('data-testid="raise-emergency"') == 1  # only the other connection's


def test_a_household_raises_a_complaint_and_follows_it(app: TestClient, db: Database, care: Care) -> None:
    asha = household_client(app, db, care.asha)

    status, location, _ = raise_via_form(
        asha,
        consumer_number="ALP-C-00000003",
        category="payment_no_token",
        description="Paid 500 by UPI, no token",
    )
    page = asha.get(location)
    listing = asha.get("/app/help")

    assert (status, location) == (303, "/app/help/ALP-T-00000001")
    assert '<span data-testid="ticket-number">ALP-T-00000001</span>' in page.text
    assert "Payment debited but no token" in page.text
    assert "Paid 500 by UPI, no token" in page.text
    assert 'data-testid="rating-form"' not in page.text  # not resolved yet
    assert 'data-testid="cancel"' in page.text
    assert "ALP-T-00000001" in listing.text


def test_bad_input_on_the_complaint_form_is_explained_and_creates_nothing(
    app: TestClient, db: Database, care: Care
) -> None:
    asha = household_client(app, db, care.asha)
    bad_forms = [
        (
            {"consumer_number": "ALP-C-00000001", "category": "", "description": "No gas since the morning"},
            "Choose what",
        ),
        ({"consumer_number": "ALP-C-00000001", "category": "billing", "description": "short"}, "at least 10"),
        (
            {
                "consumer_number": "ALP-C-00000002",
                "category": "billing",
                "description": "Bina's connection, not mine",
            },
            "Choose one of your connections",
        ),
        (
            {
                "consumer_number": "BRV-C-00000001",
                "category": "billing",
                "description": "Another CGD's connection",
            },
            "Choose one of your connections",
        ),
        (
            {
                "consumer_number": "ALP-C-00000001",
                "category": "leak'; --",
                "description": "No gas since the morning",
            },
            "Choose what",
        ),
    ]
    before = snapshot(db)
    for form, message in bad_forms:
        status, _, text = raise_via_form(asha, **form)
        assert status == 422, form
        assert 'role="alert"' in text, form
        assert message in text, form
    assert differences(before, snapshot(db)) == {}


def test_a_household_sees_only_its_own_tickets(app: TestClient, db: Database, care: Care) -> None:
    bina = household_client(app, db, care.bina)
    asha = household_client(app, db, care.asha)
    raise_via_form(
        bina, consumer_number="ALP-C-00000002", category="billing", description="Bina's billing question"
    )
    raise_via_form(
        asha, consumer_number="ALP-C-00000001", category="meter_problem", description="Display is blank"
    )

    asha_list = asha.get("/app/help").text
    peek = asha.get("/app/help/ALP-T-00000001")
    before = snapshot(db)
    cancel = asha.post(
        "/app/help/ALP-T-00000001/cancel",
        data={"csrf_token": csrf(asha, "/app/help")},
        follow_redirects=False,
    )

    assert "ALP-T-00000002" in asha_list
    assert "ALP-T-00000001" not in asha_list
    assert peek.status_code == 404
    assert "billing question" not in peek.text
    assert cancel.status_code == 404
    assert differences(before, snapshot(db)) == {}


def test_rating_is_offered_and_accepted_only_after_resolution(
    app: TestClient, db: Database, care: Care
) -> None:
    asha = household_client(app, db, care.asha)
    raise_via_form(
        asha, consumer_number="ALP-C-00000001", category="billing", description="Charged twice last week"
    )
    before = snapshot(db)
    early = asha.post(
        "/app/help/ALP-T-00000001/rate",
        data={"rating": "5", "csrf_token": csrf(asha, "/app/help")},
        follow_redirects=False,
    )
    assert early.status_code == 422
    assert "once it is resolved" in early.text
    assert differences(before, snapshot(db)) == {}

    agent = staff_client(app, "alpha.care_agent")
    resolved = agent.post(
        "/ops/tickets/ALP-T-00000001/transition",
        data={
            "action": "resolve",
            "reason": "Refunded the second charge",
            "csrf_token": csrf(agent, "/ops/tickets"),
        },
        follow_redirects=False,
    )
    page = asha.get("/app/help/ALP-T-00000001")
    rated = asha.post(
        "/app/help/ALP-T-00000001/rate",
        data={"rating": "4", "comment": "Quick", "csrf_token": csrf(asha, "/app/help")},
        follow_redirects=False,
    )
    after = asha.get("/app/help/ALP-T-00000001")

    assert resolved.status_code == 303
    assert 'data-testid="rating-form"' in page.text
    assert "Refunded the second charge" in page.text
    assert 'data-testid="reopen"' in page.text
    assert rated.status_code == 303
    assert 'data-testid="rating-form"' not in after.text
    assert 'data-testid="rating"' in after.text


def test_the_care_agent_works_the_queue_emergency_first(app: TestClient, db: Database, care: Care) -> None:
    asha = household_client(app, db, care.asha)
    raise_via_form(
        asha, consumer_number="ALP-C-00000001", category="billing", description="Question about VAT"
    )
    press_gas_button(asha, "ALP-C-00000003")
    agent = staff_client(app, "alpha.care_agent")

    queue = agent.get("/ops/tickets")
    detail = agent.get("/ops/tickets/ALP-T-00000002")
    token = csrf(agent, "/ops/tickets")
    steps = [
        agent.post("/ops/tickets/ALP-T-00000002/assign", data={"csrf_token": token}, follow_redirects=False),
        agent.post(
            "/ops/tickets/ALP-T-00000002/transition",
            data={"action": "acknowledge", "csrf_token": token},
            follow_redirects=False,
        ),
        agent.post(
            "/ops/tickets/ALP-T-00000002/messages",
            data={"visibility": "internal", "body": "Van 3 dispatched", "csrf_token": token},
            follow_redirects=False,
        ),
    ]
    bad = agent.post(
        "/ops/tickets/ALP-T-00000002/transition",
        data={"action": "resolve", "reason": "", "csrf_token": token},
        follow_redirects=False,
    )
    mine = agent.get("/ops/tickets?mine=1")
    household_view = asha.get("/app/help/ALP-T-00000002")

    numbers = re.findall(r'data-testid="ticket-number">(ALP-T-\d+)<', queue.text)
    assert numbers == ["ALP-T-00000002", "ALP-T-00000001"]  # the leak first although raised later
    assert 'href="/ops/customers/ALP-C-00000003"' in detail.text
    assert 'href="tel:9812345678"' in detail.text
    assert [s.status_code for s in steps] == [303, 303, 303]
    assert bad.status_code == 422
    assert "needs a reason" in bad.text
    assert re.findall(r'data-testid="ticket-number">(ALP-T-\d+)<', mine.text) == ["ALP-T-00000002"]
    assert "Van 3 dispatched" not in household_view.text
    assert "Seen by our care team" in household_view.text


def test_who_may_see_and_work_tickets(app: TestClient, db: Database, care: Care) -> None:
    asha = household_client(app, db, care.asha)
    raise_via_form(
        asha, consumer_number="ALP-C-00000001", category="billing", description="Question about VAT"
    )
    csc = staff_client(app, "alpha.csc_agent")
    supervisor = staff_client(app, "alpha.field_supervisor")
    manager = staff_client(app, "alpha.cgd_manager")
    bravo_agent = staff_client(app, "bravo.care_agent")
    before = snapshot(db)

    assert csc.get("/ops/tickets").status_code == 403
    assert csc.get("/ops/tickets/ALP-T-00000001").status_code == 403
    assert supervisor.get("/ops/tickets/ALP-T-00000001").status_code == 200  # may look
    assert manager.get("/ops/tickets").status_code == 200
    refused = supervisor.post(
        "/ops/tickets/ALP-T-00000001/transition",
        data={"action": "acknowledge", "csrf_token": csrf(supervisor, "/ops/tickets")},
        follow_redirects=False,
    )
    assert refused.status_code == 403  # but not act
    assert asha.get("/ops/tickets").status_code == 403
    other_cgd = bravo_agent.get("/ops/tickets/ALP-T-00000001")
    assert other_cgd.status_code == 404
    assert "VAT" not in other_cgd.text
    assert "ALP-T-00000001" not in bravo_agent.get("/ops/tickets?status=all").text
    moved = bravo_agent.post(
        "/ops/tickets/ALP-T-00000001/transition",
        data={"action": "acknowledge", "csrf_token": csrf(bravo_agent, "/ops/tickets")},
        follow_redirects=False,
    )
    assert moved.status_code == 404
    assert differences(before, snapshot(db)) == {}


def test_the_help_tab_speaks_hindi(app: TestClient, db: Database, care: Care) -> None:
    asha = household_client(app, db, care.asha)
    page = asha.get("/app/help/gas?lang=hi")
    assert "खिड़कियाँ" in page.text
    assert "Open all doors" not in page.text


def test_the_safety_steps_need_no_login(app: TestClient, db: Database, care: Care) -> None:
    stranger = TestClient(app.app, base_url="http://testserver")
    page = stranger.get("/app/help/gas")
    refused = stranger.post("/app/help/gas/report", data={"consumer_number": "ALP-C-00000001"})

    assert page.status_code == 200
    assert 'data-testid="safety-steps"' in page.text
    assert 'href="tel:1906" data-testid="emergency-number"' in page.text  # the national PNG number
    assert 'data-testid="raise-emergency"' not in page.text
    assert 'href="/app/login"' in page.text
    assert refused.status_code == 403  # reporting needs the household's session (and its CSRF token)
    assert count(db, care.alpha, Ticket) == 0
