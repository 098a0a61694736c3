"""The agent portal and the back office's agent pages, as a person uses them."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citygas.payments.csc.models import CscVend
from citygas.platform.uow import Database
from tests.conftest import csrf_from, login
from tests.receipts.csc_world import PASSWORD, Csc, csc, csc_client, float_of, fund

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
