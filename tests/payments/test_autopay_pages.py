"""Auto top-up in the customer app: set up, approve in the simulated UPI app, see it work, pause, resume,
cancel; bad input changes nothing; another household or another CGD reaches nothing."""

from __future__ import annotations

import re
import uuid

from fastapi.testclient import TestClient
from sqlalchemy import select

from citygas.customers.service import do_register_customer
from citygas.payments.autopay.models import AutopayMandate
from citygas.payments.gateway.models import GatewaySimEntity
from citygas.platform.uow import Database
from tests.conftest import csrf_from, make_tenant
from tests.payments.conftest_autopay import autopay_client, fresh_sms, log_in
from tests.vending.conftest import Shop
from tests.web.db_snapshot import differences, snapshot

__all__ = ["autopay_client", "fresh_sms"]  # fixtures


def _mandates(db: Database, shop: Shop) -> list[AutopayMandate]:
    with db.unit_of_work(tenant=shop.tenant.id, read_only=True) as uow:
        return list(uow.session.execute(select(AutopayMandate)).scalars())


def _set_up(client: TestClient, csrf: str, **form: str) -> tuple[str, str]:
    data = {"consumer_number": "ALP-C-00000001", "threshold_preset": "200", "amount_preset": "500"}
    data |= {"max_amount": "2000", "vpa": "asha.rao@okhdfc", "csrf_token": csrf} | form
    started = client.post("/app/autopay", data=data, follow_redirects=False)
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    return location, location.rsplit("/", 1)[1]


def test_a_household_sets_up_auto_top_up_and_approves_it_in_the_simulated_upi_app(
    autopay_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    csrf = log_in(autopay_client, db, gateway_shop.tenant.id)
    page = autopay_client.get("/app/autopay")
    assert 'data-testid="autopay-form"' in page.text

    approval, mandate_id = _set_up(autopay_client, csrf)
    upi = autopay_client.get(approval)
    approved = autopay_client.post(
        approval,
        data={"decision": "approve", "vpa": "asha.rao@okhdfc", "csrf_token": csrf_from(upi.text)},
        follow_redirects=False,
    )
    back = autopay_client.get(approved.headers["location"], follow_redirects=False)
    shown = autopay_client.get(back.headers["location"])

    assert approval == f"/pay/mandate/{mandate_id}"
    assert "₹2,000.00" in upi.text
    assert 'data-testid="mandate-approve"' in upi.text
    assert approved.headers["location"].startswith(
        f"/app/autopay/{mandate_id}/return?razorpay_order_id=order_"
    )
    assert back.headers["location"] == "/app/autopay?c=ALP-C-00000001&done=active"
    assert 'data-state="active"' in shown.text
    assert re.search(r'data-testid="autopay-threshold">₹200.00<', shown.text)
    assert re.search(r'data-testid="autopay-amount">₹500.00<', shown.text)
    assert "as••••••@okhdfc" in shown.text
    assert "asha.rao@okhdfc" not in shown.text
    (mandate,) = _mandates(db, gateway_shop)
    assert (mandate.state, mandate.amount_paise, mandate.max_amount_paise) == ("active", 50_000, 200_000)


def test_it_speaks_hindi(autopay_client: TestClient, db: Database, gateway_shop: Shop) -> None:
    log_in(autopay_client, db, gateway_shop.tenant.id)
    page = autopay_client.get("/app/autopay?lang=hi")
    assert "ऑटो रिचार्ज कैसे काम करता है" in page.text


def test_pause_resume_and_cancel_from_the_page(
    autopay_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    csrf = log_in(autopay_client, db, gateway_shop.tenant.id)
    approval, mandate_id = _set_up(autopay_client, csrf)
    autopay_client.post(approval, data={"decision": "approve", "csrf_token": csrf})

    paused = autopay_client.post(f"/app/autopay/{mandate_id}/pause", data={"csrf_token": csrf})
    assert 'data-state="paused"' in paused.text
    resumed = autopay_client.post(f"/app/autopay/{mandate_id}/resume", data={"csrf_token": csrf})
    assert 'data-state="active"' in resumed.text
    autopay_client.post(f"/app/autopay/{mandate_id}/cancel", data={"csrf_token": csrf})

    (mandate,) = _mandates(db, gateway_shop)
    assert mandate.state == "cancelled"


def test_a_declined_mandate_stays_off(autopay_client: TestClient, db: Database, gateway_shop: Shop) -> None:
    csrf = log_in(autopay_client, db, gateway_shop.tenant.id)
    approval, _ = _set_up(autopay_client, csrf)
    declined = autopay_client.post(approval, data={"decision": "decline", "csrf_token": csrf})

    assert "The mandate was not approved" in declined.text
    assert [m.state for m in _mandates(db, gateway_shop)] == ["failed"]


def test_bad_amounts_are_refused_with_a_message_and_change_nothing(
    autopay_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    csrf = log_in(autopay_client, db, gateway_shop.tenant.id)
    before = snapshot(db)
    cases = {
        "amount": ("500.505", "more than two decimal places"),
        "max_amount": ("20000", "needs your UPI PIN each time"),
        "threshold": ("lots", "is not an amount in rupees"),
    }
    for field, (value, message) in cases.items():
        data = {
            "consumer_number": "ALP-C-00000001",
            "threshold_preset": "200",
            "amount_preset": "500",
            "max_amount": "2000",
            "csrf_token": csrf,
            field: value,
        }
        refused = autopay_client.post("/app/autopay", data=data)
        assert refused.status_code == 422, field
        assert 'role="alert"' in refused.text
        assert message in refused.text
    assert differences(before, snapshot(db)) == {}


def test_another_household_of_the_same_cgd_reaches_nothing(
    autopay_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    csrf = log_in(autopay_client, db, gateway_shop.tenant.id)
    approval, mandate_id = _set_up(autopay_client, csrf)
    autopay_client.post(approval, data={"decision": "approve", "csrf_token": csrf})
    other = log_in(autopay_client, db, gateway_shop.tenant.id, "ALP-C-00000002")  # Bina Das, another phone
    before = snapshot(db)

    assert autopay_client.get(f"/pay/mandate/{mandate_id}").status_code == 404
    for action in ("pause", "cancel"):
        response = autopay_client.post(f"/app/autopay/{mandate_id}/{action}", data={"csrf_token": other})
        assert response.status_code == 404
    foreign = autopay_client.post(
        "/app/autopay",
        data={
            "consumer_number": "ALP-C-00000001",
            "threshold_preset": "200",
            "amount_preset": "500",
            "csrf_token": other,
        },
    )
    assert foreign.status_code == 422
    assert "ALP-C-00000001" not in autopay_client.get("/app/autopay").text
    assert differences(before, snapshot(db)) == {}


def test_a_household_of_another_cgd_reaches_nothing(
    autopay_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    csrf = log_in(autopay_client, db, gateway_shop.tenant.id)
    approval, mandate_id = _set_up(autopay_client, csrf)
    autopay_client.post(approval, data={"decision": "approve", "csrf_token": csrf})
    bravo = make_tenant(db, "bravo", "BRV")
    with db.unit_of_work(tenant=bravo.id) as uow:
        do_register_customer(
            uow.session, name="Chitra", phone="9812345678", charge_area_code="BRV-CA1", address="3 B St"
        )  # the same phone, another gas company
        uow.commit()
    other = log_in(autopay_client, db, bravo.id, "BRV-C-00000001")
    before = snapshot(db)

    assert autopay_client.get(f"/pay/mandate/{mandate_id}").status_code == 404
    assert autopay_client.get(f"/pay/mandate/{uuid.uuid4()}").status_code == 404
    paused = autopay_client.post(f"/app/autopay/{mandate_id}/pause", data={"csrf_token": other})
    assert paused.status_code == 404
    assert "ALP-C-00000001" not in autopay_client.get("/app/autopay").text
    assert differences(before, snapshot(db)) == {}


def test_the_simulator_fails_the_next_debit_on_request(
    autopay_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    csrf = log_in(autopay_client, db, gateway_shop.tenant.id)
    approval, mandate_id = _set_up(autopay_client, csrf)
    autopay_client.post(approval, data={"decision": "approve", "csrf_token": csrf})

    failing = autopay_client.post(
        f"/pay/mandate/{mandate_id}/fail-next", data={"reason": "Bank server down", "csrf_token": csrf}
    )

    assert "the next debit of this mandate will fail" in failing.text
    (mandate,) = _mandates(db, gateway_shop)
    with db.unit_of_work(tenant=gateway_shop.tenant.id, read_only=True) as uow:
        token = uow.session.execute(
            select(GatewaySimEntity).where(GatewaySimEntity.entity_id == mandate.token_id)
        ).scalar_one()
    assert token.body["fail_next"] == "Bank server down"
