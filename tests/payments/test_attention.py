"""Payments needing attention (`/ops/payments`): money captured whose vend was refused; the retry that
vends once however often it is clicked, the refund that refunds once, who may do which, the tenant wall,
and bad input that changes nothing."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from citygas.ledger.models import JournalEntry
from citygas.meters.service import do_meter_transition, get_meter
from citygas.payments.gateway import attention, attention_pages
from citygas.payments.gateway.models import GatewayPayment, GatewayRefund
from citygas.payments.gateway.service import PaymentRefused
from citygas.platform.audit import AuditEntry
from citygas.platform.settings import Settings
from citygas.platform.uow import Database
from citygas.vending.models import Vend
from citygas.vending.service import VendRefused
from tests.conftest import csrf_from, login, make_tenant, make_user
from tests.meters.test_registry import MASTER
from tests.payments.test_gateway import confirm, count, create_order, pay, refund_payment
from tests.vending.conftest import Shop
from tests.web.db_snapshot import differences, snapshot

PASSWORD = "a-long-password-1"


def meter_action(db: Database, shop: Shop, action: str) -> None:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        meter = get_meter(uow.session, shop.serial)
        do_meter_transition(
            uow.session,
            meter,
            action,
            permissions=frozenset({"meter.manage"}),
            reason="gas leak reported" if action == "suspend" else None,
        )
        uow.commit()


def refused_payment(db: Database, shop: Shop) -> str:
    """A ₹500 card payment captured while the meter was suspended: money in, no token."""
    paid = pay(db, shop, create_order(db, shop))
    meter_action(db, shop, "suspend")
    settled = confirm(db, shop, paid)
    assert settled.payment.status == "vend_failed"
    return paid.payment_id


@pytest.fixture
def attention_client(gateway_client: TestClient) -> TestClient:
    app = gateway_client.app
    paths = {getattr(r, "path", "") for r in app.routes}  # type: ignore[attr-defined]
    if "/ops/payments" not in paths:  # until web/app.py wires the router
        app.include_router(attention_pages.router)  # type: ignore[attr-defined]
    return gateway_client


def staff(client: TestClient, db: Database, shop: Shop, role: str = "back_office") -> None:
    name = f"alpha.{role}"
    make_user(db, shop.tenant, name, [role], PASSWORD)
    login(client, name, PASSWORD)


def form_of(client: TestClient, payment_id: str) -> dict[str, str]:
    page = client.get(f"/ops/payments/{payment_id}")
    assert page.status_code == 200, page.text
    key = re.search(r'name="request_key" value="([^"]+)"', page.text)
    return {"csrf_token": csrf_from(page.text), "request_key": key.group(1) if key else ""}


# --- the use cases ------------------------------------------------------------------------------------


def test_a_refused_payment_is_listed_with_its_reason_and_leaves_the_list_once_vended(
    db: Database, gateway_shop: Shop
) -> None:
    payment_id = refused_payment(db, gateway_shop)
    with db.unit_of_work(tenant=gateway_shop.tenant.id, read_only=True) as uow:
        listed = attention.list_needing_attention(uow.session)
    meter_action(db, gateway_shop, "resume")
    with db.unit_of_work(tenant=gateway_shop.tenant.id) as uow:
        outcome = attention.do_retry_vend(
            uow.session, gateway_payment_id=payment_id, reason="meter resumed", master_key=MASTER
        )
        uow.because("meter resumed").commit()
    with db.unit_of_work(tenant=gateway_shop.tenant.id, read_only=True) as uow:
        after = attention.list_needing_attention(uow.session)

    assert [(v.payment.gateway_payment_id, v.reason_code, v.order.consumer_number) for v in listed] == [
        (payment_id, "meter_not_active", gateway_shop.consumer_number)
    ]
    assert (outcome.replayed, outcome.view.payment.status, outcome.vend.amount_paise) == (
        False,
        "captured",
        50_000,
    )
    assert outcome.vend.idempotency_key == f"rzp:{payment_id}"
    assert after == []


def test_a_retry_while_the_cause_remains_is_refused_and_changes_nothing(
    db: Database, gateway_shop: Shop
) -> None:
    payment_id = refused_payment(db, gateway_shop)
    before = snapshot(db)

    with pytest.raises(VendRefused) as refused, db.unit_of_work(tenant=gateway_shop.tenant.id) as uow:
        attention.do_retry_vend(uow.session, gateway_payment_id=payment_id, reason="try", master_key=MASTER)

    assert refused.value.code == "meter_not_active"
    assert differences(before, snapshot(db)) == {}


def test_a_refunded_payment_cannot_be_vended_as_well(db: Database, gateway_shop: Shop) -> None:
    payment_id = refused_payment(db, gateway_shop)
    refund_payment(db, gateway_shop, payment_id, key="refund-1", amount_paise=10_000)
    meter_action(db, gateway_shop, "resume")
    before = snapshot(db)

    with pytest.raises(PaymentRefused) as refused, db.unit_of_work(tenant=gateway_shop.tenant.id) as uow:
        attention.do_retry_vend(uow.session, gateway_payment_id=payment_id, reason="x", master_key=MASTER)

    assert refused.value.code == "payment_not_retryable"
    assert differences(before, snapshot(db)) == {}


# --- the pages ----------------------------------------------------------------------------------------


def test_the_list_shows_reason_customer_amount_and_age(
    attention_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    payment_id = refused_payment(db, gateway_shop)
    staff(attention_client, db, gateway_shop)

    page = attention_client.get("/ops/payments")

    assert page.status_code == 200
    for shown in (
        payment_id,
        gateway_shop.consumer_number,
        "Asha Rao",
        "₹500.00",
        "meter not active",
        "0 min",
    ):
        assert shown in page.text


def test_retry_clicked_twice_vends_once(
    attention_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    payment_id = refused_payment(db, gateway_shop)
    meter_action(db, gateway_shop, "resume")
    staff(attention_client, db, gateway_shop, "care_agent")  # care may vend again; it moves no money out
    form = form_of(attention_client, payment_id)

    first = attention_client.post(
        f"/ops/payments/{payment_id}/retry",
        data={"csrf_token": form["csrf_token"], "reason": "meter resumed after repair"},
        follow_redirects=False,
    )
    second = attention_client.post(
        f"/ops/payments/{payment_id}/retry",
        data={"csrf_token": form["csrf_token"], "reason": "meter resumed after repair"},
        follow_redirects=False,
    )
    detail = attention_client.get(first.headers["location"])

    assert (first.status_code, second.status_code) == (303, 303)
    assert first.headers["location"].endswith("done=vended")
    assert second.headers["location"].endswith("done=already_vended")
    assert count(db, gateway_shop, Vend) == 1
    assert count(db, gateway_shop, JournalEntry) == 1
    assert "Receipt" in detail.text
    assert "alpha.care_agent" in detail.text.lower().replace(" ", ".")
    with db.unit_of_work(tenant=gateway_shop.tenant.id, read_only=True) as uow:
        payment = uow.session.execute(select(GatewayPayment)).scalar_one()
        audit = (
            uow.session.execute(
                select(AuditEntry).where(
                    AuditEntry.entity_id == str(payment.id), AuditEntry.action == "gateway_payment.update"
                )
            )
            .scalars()
            .all()
        )
    assert (payment.status, payment.vend_error) == ("captured", "")
    assert [a.reason for a in audit][-1] == "meter resumed after repair"


def test_refund_submitted_twice_refunds_once_and_is_listed(
    attention_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    payment_id = refused_payment(db, gateway_shop)
    staff(attention_client, db, gateway_shop)
    form = form_of(attention_client, payment_id)
    data = form | {"reason": "customer asked for the money back", "amount": ""}

    first = attention_client.post(f"/ops/payments/{payment_id}/refund", data=data, follow_redirects=False)
    second = attention_client.post(f"/ops/payments/{payment_id}/refund", data=data, follow_redirects=False)
    listed = attention_client.get("/ops/payments/refunds")
    attention_list = attention_client.get("/ops/payments")

    assert (first.status_code, second.status_code) == (303, 303)
    with db.unit_of_work(tenant=gateway_shop.tenant.id, read_only=True) as uow:
        refund = uow.session.execute(select(GatewayRefund)).scalar_one()
        payment = uow.session.execute(select(GatewayPayment)).scalar_one()
        audit = uow.session.execute(
            select(AuditEntry).where(AuditEntry.entity_id == str(refund.id))
        ).scalar_one()
    assert (refund.amount_paise, refund.ledger_entry_id, refund.request_key) == (
        50_000,
        None,
        form["request_key"],
    )
    assert (payment.status, payment.refunded_paise) == ("refunded", 50_000)
    assert (audit.actor_label, audit.reason) == (audit.actor_label, "customer asked for the money back")
    assert "alpha" in audit.actor_label.lower()
    assert count(db, gateway_shop, JournalEntry) == 0  # no token was issued, so nothing is posted
    assert refund.gateway_refund_id in listed.text
    assert "nothing posted" in listed.text
    assert payment_id not in attention_list.text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"reason": "", "amount": ""}, "say why"),
        ({"reason": "double payment", "amount": "abc"}, "amount"),
        ({"reason": "double payment", "amount": "600"}, "at most ₹500.00"),
        ({"reason": "double payment", "amount": "0"}, "positive"),
        ({"reason": "double payment", "amount": "", "request_key": "forged"}, "out of date"),
    ],
)
def test_bad_refund_input_is_explained_and_changes_nothing(
    attention_client: TestClient, db: Database, gateway_shop: Shop, data: dict[str, str], message: str
) -> None:
    payment_id = refused_payment(db, gateway_shop)
    staff(attention_client, db, gateway_shop)
    form = form_of(attention_client, payment_id)
    before = snapshot(db)

    response = attention_client.post(f"/ops/payments/{payment_id}/refund", data=form | data)

    assert response.status_code in (409, 422), response.text
    assert 'role="alert"' in response.text
    assert message in response.text
    assert differences(before, snapshot(db)) == {}


def test_a_retry_refused_again_is_explained_and_changes_nothing(
    attention_client: TestClient, db: Database, gateway_shop: Shop
) -> None:
    payment_id = refused_payment(db, gateway_shop)  # the meter is still suspended
    staff(attention_client, db, gateway_shop)
    form = form_of(attention_client, payment_id)
    before = snapshot(db)

    empty = attention_client.post(
        f"/ops/payments/{payment_id}/retry", data={"csrf_token": form["csrf_token"]}
    )
    refused = attention_client.post(
        f"/ops/payments/{payment_id}/retry", data={"csrf_token": form["csrf_token"], "reason": "try again"}
    )

    assert (empty.status_code, refused.status_code) == (422, 422)
    assert "say why" in empty.text
    assert "only an active meter takes credit" in refused.text
    assert differences(before, snapshot(db)) == {}


def test_who_may_see_retry_and_refund(attention_client: TestClient, db: Database, gateway_shop: Shop) -> None:
    payment_id = refused_payment(db, gateway_shop)
    staff(attention_client, db, gateway_shop, "care_agent")
    form = form_of(attention_client, payment_id)
    before = snapshot(db)

    care_refund = attention_client.post(
        f"/ops/payments/{payment_id}/refund",
        data={"csrf_token": form["csrf_token"], "request_key": "ops-x", "reason": "asked"},
    )
    care_page = attention_client.get(f"/ops/payments/{payment_id}")
    unchanged = differences(before, snapshot(db))
    attention_client.cookies.clear()
    staff(attention_client, db, gateway_shop, "cgd_viewer")
    viewer = attention_client.get("/ops/payments")
    viewer_detail = attention_client.get(f"/ops/payments/{payment_id}")

    assert care_refund.status_code == 403
    assert "/refund" not in care_page.text
    assert "/retry" in care_page.text
    assert (viewer.status_code, viewer_detail.status_code) == (403, 403)
    assert unchanged == {}


def test_another_tenants_staff_cannot_see_or_act_on_the_payment(
    attention_client: TestClient, db: Database, gateway_shop: Shop, settings: Settings
) -> None:
    payment_id = refused_payment(db, gateway_shop)
    meter_action(db, gateway_shop, "resume")
    bravo = make_tenant(db, "bravo", "BRV")
    make_user(db, bravo, "bravo.office", ["back_office"], PASSWORD)
    login(attention_client, "bravo.office", PASSWORD)
    listing = attention_client.get("/ops/payments")
    csrf = csrf_from(listing.text)
    before = snapshot(db)

    detail = attention_client.get(f"/ops/payments/{payment_id}")
    retry = attention_client.post(
        f"/ops/payments/{payment_id}/retry", data={"csrf_token": csrf, "reason": "x"}
    )
    refund = attention_client.post(
        f"/ops/payments/{payment_id}/refund",
        data={"csrf_token": csrf, "reason": "x", "request_key": "ops-1"},
    )

    assert payment_id not in listing.text
    assert (detail.status_code, retry.status_code, refund.status_code) == (404, 404, 404)
    assert differences(before, snapshot(db)) == {}
