"""The gateway channel over HTTP: the pages a payer goes through, the webhook endpoint with its raw-body
signature, the order API's problem responses, and the simulator's webhook relayed by the worker."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citygas.payments.gateway.models import GatewayPayment
from citygas.payments.gateway.simulator import WEBHOOK_TOPIC
from citygas.platform.outbox import OutboxEvent, OutboxRelay
from citygas.platform.uow import Database
from citygas.vending.models import Vend
from tests.conftest import csrf_from, csrf_of, login, make_user
from tests.payments.test_gateway import CONSUMER, count, create_order, pay, queued_webhooks
from tests.vending.conftest import Shop
from tests.web.db_snapshot import differences, snapshot

PASSWORD = "a-long-password-1"
WEBHOOK = "/api/v1/payments/gateway/alpha/webhook"


def staff(client: TestClient, db: Database, shop: Shop) -> None:
    make_user(db, shop.tenant, "alpha.office", ["back_office"], PASSWORD)
    login(client, "alpha.office", PASSWORD)


def test_a_payer_tops_up_by_upi_through_the_pages_and_sees_the_token(
    gateway_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    staff(gateway_client, db, gateway_shop)
    form = gateway_client.get("/pay/new")
    started = gateway_client.post(
        "/pay/new",
        data={"consumer_number": CONSUMER, "amount": "500", "csrf_token": csrf_from(form.text)},
        follow_redirects=False,
    )
    checkout = gateway_client.get(started.headers["location"])
    paid = gateway_client.post(
        started.headers["location"],
        data={"method": "upi", "vpa": "asha@upi", "csrf_token": csrf_from(checkout.text)},
        follow_redirects=False,
    )
    receipt = gateway_client.get(paid.headers["location"])

    assert started.status_code == 303
    assert started.headers["location"].startswith("/pay/checkout/order_")
    assert "₹500.00" in checkout.text
    assert paid.headers["location"].startswith("/pay/alpha/return?razorpay_order_id=order_")
    assert receipt.status_code == 200
    assert "Top-up done" in receipt.text
    assert "₹485.50" in receipt.text
    assert len(re.findall(r'data-testid="token">(\d{4}(?: \d{4}){4})<', receipt.text)) == 2  # tariff, credit
    with db.unit_of_work(tenant=gateway_shop.tenant.id, read_only=True) as uow:
        vend = uow.session.execute(select(Vend)).scalar_one()
    assert (vend.channel, vend.amount_paise) == ("upi", 50_000)


def test_the_worker_relays_the_simulators_webhook_and_it_finds_the_payment_settled(
    gateway_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    paid = pay(db, gateway_shop, create_order(db, gateway_shop))
    gateway_client.get(
        f"/pay/alpha/return?razorpay_order_id={paid.order_id}&razorpay_payment_id={paid.payment_id}"
        f"&razorpay_signature={paid.signature}"
    )

    OutboxRelay(db.write_sessions).relay_once()

    with db.system(read_only=True) as uow:
        statuses = set(
            uow.session.execute(
                select(OutboxEvent.status).where(OutboxEvent.topic == WEBHOOK_TOPIC)
            ).scalars()
        )
    assert statuses == {"done"}
    assert (count(db, gateway_shop, GatewayPayment), count(db, gateway_shop, Vend)) == (1, 1)


def test_the_webhook_endpoint_verifies_the_raw_body_and_vends(
    gateway_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    pay(db, gateway_shop, create_order(db, gateway_shop))
    hook = queued_webhooks(db, "payment.captured")[0]
    headers = {"X-Razorpay-Signature": hook["signature"], "X-Razorpay-Event-Id": hook["event_id"]}

    first = gateway_client.post(WEBHOOK, content=hook["body"], headers=headers)
    replay = gateway_client.post(WEBHOOK, content=hook["body"], headers=headers)

    assert (first.status_code, first.json()["status"]) == (200, "vended")
    assert replay.json() == {"status": "duplicate", "event": "payment.captured",
                             "detail": f"event {hook['event_id']} was received before"}  # fmt: skip
    assert count(db, gateway_shop, Vend) == 1


def test_a_forged_webhook_is_400_bad_signature_and_changes_nothing(
    gateway_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    pay(db, gateway_shop, create_order(db, gateway_shop))
    hook = queued_webhooks(db, "payment.captured")[0]
    reformatted = hook["body"].replace(",", ", ")  # the same JSON, other bytes: the signature is over bytes
    before = snapshot(db)

    response = gateway_client.post(
        WEBHOOK, content=reformatted, headers={"X-Razorpay-Signature": hook["signature"]}
    )
    unsigned = gateway_client.post(WEBHOOK, content=hook["body"])

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "bad_signature"
    assert (unsigned.status_code, unsigned.json()["code"]) == (400, "bad_signature")
    assert differences(before, snapshot(db)) == {}


def test_a_webhook_for_an_unknown_gas_company_is_404(gateway_client: TestClient, gateway_shop: Shop) -> None:
    response = gateway_client.post("/api/v1/payments/gateway/nobody/webhook", content=b"{}")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_the_order_api_refuses_an_amount_outside_the_limits_as_a_problem(
    gateway_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    staff(gateway_client, db, gateway_shop)
    csrf = csrf_of(gateway_client, "/pay/new")
    before = snapshot(db)

    response = gateway_client.post(
        "/api/v1/payments/gateway/orders",
        json={"consumer_number": CONSUMER, "amount_paise": 4_999},
        headers={"X-CSRF-Token": csrf},
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert (response.json()["code"], response.json()["minimum_paise"]) == ("amount_out_of_range", 5_000)
    assert differences(before, snapshot(db)) == {}


def test_the_order_api_creates_an_order_and_reports_the_vend_once_paid(
    gateway_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    staff(gateway_client, db, gateway_shop)
    csrf = csrf_of(gateway_client, "/pay/new")

    created = gateway_client.post(
        "/api/v1/payments/gateway/orders",
        json={"consumer_number": CONSUMER, "amount_paise": 50_000},
        headers={"X-CSRF-Token": csrf},
    )
    order_id = created.json()["order_id"]
    paid = pay(db, gateway_shop, order_id)
    gateway_client.get(
        f"/pay/alpha/return?razorpay_order_id={order_id}&razorpay_payment_id={paid.payment_id}"
        f"&razorpay_signature={paid.signature}"
    )
    status = gateway_client.get(f"/api/v1/payments/gateway/orders/{order_id}").json()

    assert created.status_code == 201
    assert (created.json()["gateway"], created.json()["checkout_url"]) == (
        "simulator",
        f"/pay/checkout/{order_id}",
    )
    assert (status["status"], status["payments"][0]["status"]) == ("paid", "captured")
    assert status["payments"][0]["vend"]["gas_credit_paise"] == 48_550


def test_a_forged_return_signature_shows_an_error_and_changes_nothing(
    gateway_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    paid = pay(db, gateway_shop, create_order(db, gateway_shop))
    before = snapshot(db)

    response = gateway_client.get(
        f"/pay/alpha/return?razorpay_order_id={paid.order_id}&razorpay_payment_id={paid.payment_id}"
        f"&razorpay_signature={'ab' * 32}"
    )

    assert response.status_code == 400
    assert "The signature does not match" in response.text
    assert differences(before, snapshot(db)) == {}
    with db.unit_of_work(tenant=gateway_shop.tenant.id, read_only=True) as uow:
        assert uow.session.execute(select(func.count()).select_from(Vend)).scalar_one() == 0
