"""The agent portal and the back office's agent pages, as a person uses them."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citygas.ledger.rules import AccountCode
from citygas.ledger.service import get_balance
from citygas.payments.csc.models import CommissionPayout, CscVend, FloatTopup
from citygas.payments.csc.service import do_csc_vend
from citygas.platform import time as clock
from citygas.platform.uow import Database
from tests.conftest import csrf_from, login, make_user
from tests.meters.test_registry import MASTER
from tests.receipts.csc_world import NOW, PASSWORD, Csc, csc, csc_client, float_of, fund

__all__ = ["csc", "csc_client"]  # fixtures, imported for pytest

REF = re.compile(r'name="client_ref" value="([^"]+)"')


def test_a_double_clicked_vend_button_vends_once(db: Database, csc: Csc, csc_client: TestClient) -> None:
    fund(db, csc, 1_000_00)
    login(csc_client, "alpha.vle", PASSWORD)
    page = csc_client.get("/agent/consumer", params={"q": "alp-c-00000001"})
    assert page.status_code == 200
    assert "Asha Rao" in page.text
    assert "SN0001" in page.text
    ref = REF.search(page.text)
    assert ref is not None
    form = {
        "csrf_token": csrf_from(page.text),
        "client_ref": ref.group(1),
        "consumer_number": "ALP-C-00000001",
        "amount": "250",
        "cash_received": "yes",
    }
    first = csc_client.post("/agent/vend", data=form, follow_redirects=False)
    second = csc_client.post("/agent/vend", data=form, follow_redirects=False)
    assert (first.status_code, second.status_code) == (303, 303)
    assert first.headers["location"] == second.headers["location"]
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        assert uow.session.execute(select(func.count()).select_from(CscVend)).scalar_one() == 1
    assert float_of(db, csc) == 750_00
    done = csc_client.get(first.headers["location"])
    assert done.status_code == 200
    assert done.text.count('data-testid="token"') >= 1
    assert re.search(r"\d{4} \d{4} \d{4} \d{4} \d{4}", done.text)
    home = csc_client.get("/agent/")
    assert "₹750.00" in home.text
    assert "ALP-R-" in home.text


def test_a_vend_beyond_the_float_shows_the_reason_and_keeps_the_form(
    db: Database, csc: Csc, csc_client: TestClient
) -> None:
    fund(db, csc, 100_00)
    login(csc_client, "alpha.vle", PASSWORD)
    page = csc_client.get("/agent/consumer", params={"q": "ALP-C-00000001"})
    ref = REF.search(page.text)
    assert ref is not None
    response = csc_client.post(
        "/agent/vend",
        data={
            "csrf_token": csrf_from(page.text),
            "client_ref": ref.group(1),
            "consumer_number": "ALP-C-00000001",
            "amount": "500",
            "cash_received": "yes",
        },
        follow_redirects=False,
    )
    assert response.status_code == 422
    assert "the float is ₹100.00" in response.text
    assert f'value="{ref.group(1)}"' in response.text
    assert float_of(db, csc) == 100_00


def test_the_agent_asks_for_a_topup_and_the_back_office_approves_it(
    db: Database, csc: Csc, csc_client: TestClient
) -> None:
    login(csc_client, "alpha.vle", PASSWORD)
    page = csc_client.get("/agent/float")
    sent = csc_client.post(
        "/agent/float", data={"csrf_token": csrf_from(page.text), "amount": "2,000", "reference": "UPI123456"}
    )
    assert sent.status_code == 200
    assert "Sent to the back office" in sent.text
    csc_client.cookies.clear()
    login(csc_client, "alpha.office", PASSWORD)
    queue = csc_client.get("/ops/csc/topups")
    assert "UPI123456" in queue.text
    assert "₹2,000.00" in queue.text
    action = re.search(r'action="(/ops/csc/topups/[^"]+/approve)"', queue.text)
    assert action is not None
    approved = csc_client.post(
        action.group(1), data={"csrf_token": csrf_from(queue.text)}, follow_redirects=False
    )
    assert approved.status_code == 303
    assert float_of(db, csc) == 2_000_00
    assert "Nothing waiting" in csc_client.get("/ops/csc/topups").text


def test_the_back_office_cannot_type_a_thousand_percent_commission(csc: Csc, csc_client: TestClient) -> None:
    login(csc_client, "alpha.office", PASSWORD)
    page = csc_client.get("/ops/csc/agents")
    assert "CSC-0042" in page.text
    assert "1.5 % of each vend, at most ₹20.00" in page.text
    agent_page = csc_client.get(f"/ops/csc/agents/{csc.agent_id}")
    refused = csc_client.post(
        f"/ops/csc/agents/{csc.agent_id}/commission",
        data={"csrf_token": csrf_from(agent_page.text), "commission_kind": "percent", "percent": "1000"},
    )
    assert refused.status_code == 422
    assert "10 % is written 10, not 1000" in refused.text
    assert "1.5 % of each vend" in csc_client.get(f"/ops/csc/agents/{csc.agent_id}").text


def test_the_statement_downloads_as_csv(db: Database, csc: Csc, csc_client: TestClient) -> None:
    fund(db, csc, 1_000_00)
    login(csc_client, "alpha.vle", PASSWORD)
    page = csc_client.get("/agent/consumer", params={"q": "ALP-C-00000001"})
    ref = REF.search(page.text)
    assert ref is not None
    csc_client.post(
        "/agent/vend",
        data={
            "csrf_token": csrf_from(page.text),
            "client_ref": ref.group(1),
            "consumer_number": "ALP-C-00000001",
            "amount": "400",
            "cash_received": "yes",
        },
    )
    text = csc_client.get("/agent/statement.csv", params={"day": "2026-12-04"}).text
    lines = text.splitlines()
    assert lines[1:9] == [
        "CSC-0042,2026-12-04,opening_float_paise,0",
        "CSC-0042,2026-12-04,topups_paise,100000",
        "CSC-0042,2026-12-04,topup_count,1",
        "CSC-0042,2026-12-04,vends_paise,40000",
        "CSC-0042,2026-12-04,vend_count,1",
        "CSC-0042,2026-12-04,adjustments_paise,0",
        "CSC-0042,2026-12-04,commission_paise,600",
        "CSC-0042,2026-12-04,closing_float_paise,60000",
    ]
    page = csc_client.get("/agent/statement", params={"day": "2026-12-04"})
    assert "₹600.00" in page.text


def test_the_person_who_entered_a_topup_sees_why_they_cannot_approve_it(
    db: Database, csc: Csc, csc_client: TestClient
) -> None:
    make_user(db, csc.tenant, "alpha.checker", ["back_office"], PASSWORD)
    login(csc_client, "alpha.office", PASSWORD)
    agent_page = csc_client.get(f"/ops/csc/agents/{csc.agent_id}")
    entered = csc_client.post(
        f"/ops/csc/agents/{csc.agent_id}/topups",
        data={"csrf_token": csrf_from(agent_page.text), "amount": "1,500", "reference": "UTR-4EYES-01"},
        follow_redirects=False,
    )
    assert entered.status_code == 303
    queue = csc_client.get("/ops/csc/topups")
    assert 'data-testid="four-eyes"' in queue.text
    assert "another person with float approval must approve it" in queue.text
    assert "/approve" not in queue.text
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        topup = uow.session.execute(select(FloatTopup)).scalar_one()
    # The button is not there; sending the form anyway is refused and changes nothing.
    refused = csc_client.post(
        f"/ops/csc/topups/{topup.id}/approve", data={"csrf_token": csrf_from(queue.text)}
    )
    assert refused.status_code == 403
    assert "another person with float approval" in refused.text
    assert float_of(db, csc) == 0

    csc_client.cookies.clear()
    login(csc_client, "alpha.checker", PASSWORD)
    queue = csc_client.get("/ops/csc/topups")
    assert 'data-testid="four-eyes"' not in queue.text
    approved = csc_client.post(
        f"/ops/csc/topups/{topup.id}/approve",
        data={"csrf_token": csrf_from(queue.text)},
        follow_redirects=False,
    )
    assert approved.status_code == 303
    assert float_of(db, csc) == 1_500_00
    history = csc_client.get(f"/ops/csc/agents/{csc.agent_id}").text
    assert "Alpha Office (alpha.office): start" in history
    assert "Alpha Checker (alpha.checker): approve" in history


def test_the_back_office_pays_last_months_commission_once_and_the_agent_sees_it(
    db: Database, csc: Csc, csc_client: TestClient
) -> None:
    fund(db, csc, 2_000_00)
    with db.unit_of_work(tenant=csc.tenant.id) as uow:
        for n, paise in enumerate((400_00, 1_000_00)):
            do_csc_vend(
                uow.session,
                csc.agent(uow.session),
                csc.consumer_number,
                paise,
                f"form-{n:04d}",
                master_key=MASTER,
            )
        uow.commit()
    clock.freeze(NOW + timedelta(days=32))  # 5 Jan 2027: December is the month to pay
    login(csc_client, "alpha.office", PASSWORD)
    page = csc_client.get("/ops/csc/payouts")
    assert "Commission payouts — December 2026" in page.text
    assert re.search(r'data-testid="owed-CSC-0042">₹21\.00<', page.text)
    assert 'value="21.00"' in page.text
    action = f"/ops/csc/agents/{csc.agent_id}/payouts"
    form = {
        "csrf_token": csrf_from(page.text),
        "period": "2026-12",
        "amount": "21.01",
        "reference": "UTR-COM-1",
    }
    too_much = csc_client.post(action, data=form)
    assert too_much.status_code == 422
    assert "is owed ₹21.00 of commission up to the end of December 2026" in too_much.text
    for bad, message in (
        ({"amount": "-5"}, "the amount"),
        ({"period": "2026-13"}, "a month is written YYYY-MM"),
        ({"period": ""}, "say which month"),
        ({"amount": "21", "reference": "x"}, "UTR or UPI reference"),
    ):
        refused = csc_client.post(action, data={**form, **bad})
        assert refused.status_code == 422, bad
        assert message in refused.text
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        assert uow.session.execute(select(func.count()).select_from(CommissionPayout)).scalar_one() == 0

    form["amount"] = "21"
    first = csc_client.post(action, data=form, follow_redirects=False)
    second = csc_client.post(action, data=form, follow_redirects=False)
    assert (first.status_code, second.status_code) == (303, 303)
    assert first.headers["location"] == "/ops/csc/payouts?period=2026-12"
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        assert uow.session.execute(select(func.count()).select_from(CommissionPayout)).scalar_one() == 1
        payable = get_balance(uow.session, AccountCode.COMMISSION_PAYABLE, str(csc.agent_id))
    assert payable == 0
    paid = csc_client.get(first.headers["location"]).text
    assert "Nothing owed" in paid
    assert "UTR-COM-1" in paid
    assert "UTR-COM-1" in csc_client.get(f"/ops/csc/agents/{csc.agent_id}").text

    csc_client.cookies.clear()
    login(csc_client, "alpha.vle", PASSWORD)
    home = csc_client.get("/agent/").text
    assert re.search(r"Paid to you so far</dt><dd>₹21\.00<", home)
    assert "UTR-COM-1" in home
    # An agent cannot open the back office's payout page.
    assert csc_client.get("/ops/csc/payouts").status_code in (403, 404)
