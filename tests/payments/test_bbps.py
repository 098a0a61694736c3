"""The BBPS biller channel: bill fetch, payment notification → vend (once per BBPS transaction), status."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from citygas.ledger.rules import AccountCode
from citygas.ledger.service import get_balance
from citygas.payments.bbps.models import BbpsPayment
from citygas.platform.outbox import OutboxEvent
from citygas.platform.time import utcnow
from citygas.sts import AcceptOutcome
from tests.payments.conftest_bbps import ASHA, BINA, MODELS, Biller, biller, make_api_key
from tests.support.meters import meter_on_the_wall
from tests.web.db_snapshot import differences, snapshot

__all__ = ["MODELS", "biller"]
PROBLEM = "application/problem+json"


def payment(ref: str = "CC0123456789", amount: object = 50_000, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "bbps_txn_ref": ref,
        "consumer_number": ASHA,
        "amount_paise": amount,
        "paid_at": (utcnow() - timedelta(minutes=1)).isoformat(),
        "payment_mode": "Cash",
        "payment_channel": "AGT",
        "agent_id": "AI01AI01AGT000001",
        "customer_mobile": "9898989898",
    }
    return body | over


def assert_problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == code


def test_bill_fetch_shows_the_masked_name_and_the_vend_limits_with_nothing_due(biller: Biller) -> None:
    response = biller.client.post(
        "/api/v1/bbps/bill-fetch",
        json={"consumer_number": ASHA, "agent_id": "AI01"},
        headers=biller.headers(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["fetch_reference"].startswith("BF")
    assert (body["customer_name"], body["consumer_number"]) == ("A*** R**", ASHA)
    assert body["bill"] == {
        "bill_type": "prepaid",
        "due_amount_paise": None,
        "minimum_amount_paise": 5_000,
        "maximum_amount_paise": 5_000_000,
        "amount_exactness": "RANGE",
    }


def test_bill_fetch_for_an_unknown_consumer_is_refused_and_changes_nothing(biller: Biller) -> None:
    before = snapshot(biller.db)
    response = biller.client.post(
        "/api/v1/bbps/bill-fetch", json={"consumer_number": "ALP-C-99999999"}, headers=biller.headers()
    )
    assert_problem(response, 404, "unknown_consumer")
    assert differences(before, snapshot(biller.db)) == {}


def test_bill_fetch_for_a_consumer_without_an_active_meter_is_refused(biller: Biller) -> None:
    response = biller.client.post(
        "/api/v1/bbps/bill-fetch", json={"consumer_number": BINA}, headers=biller.headers()
    )
    assert_problem(response, 422, "consumer_not_payable")


def test_a_payment_vends_and_the_token_goes_by_sms(biller: Biller) -> None:
    fetch = biller.client.post(
        "/api/v1/bbps/bill-fetch", json={"consumer_number": ASHA}, headers=biller.headers()
    ).json()
    response = biller.client.post(
        "/api/v1/bbps/payments",
        json=payment(fetch_reference=fetch["fetch_reference"]),
        headers=biller.headers(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["bbps_txn_ref"], body["amount_paise"]) == ("SUCCESS", "CC0123456789", 50_000)
    assert body["approval_ref_number"] == body["receipt_number"]
    assert [t["kind"] for t in body["tokens"]] == ["set_tariff_rate", "credit"]
    with biller.db.unit_of_work(tenant=biller.tenant.id, read_only=True) as uow:
        clearing = get_balance(uow.session, AccountCode.BBPS_CLEARING)
        rows = uow.session.execute(select(BbpsPayment)).scalars().all()
    with biller.db.system(read_only=True) as uow:
        sms = [
            e.payload
            for e in uow.session.execute(select(OutboxEvent)).scalars()
            if e.topic == "notification.requested"
        ]
    assert clearing == 50_000
    assert [(r.agent_id, r.payment_mode, r.customer_mobile_last4) for r in rows] == [
        ("AI01AI01AGT000001", "Cash", "9898")
    ]
    assert len(sms) == 1
    assert sms[0]["to"] == "9812345678"
    assert body["tokens"][1]["grouped"] in sms[0]["text"]


def test_a_retried_notification_gets_the_first_answer_and_vends_once(biller: Biller) -> None:
    first = biller.client.post("/api/v1/bbps/payments", json=payment(), headers=biller.headers())
    before = snapshot(biller.db)
    again = biller.client.post("/api/v1/bbps/payments", json=payment(), headers=biller.headers())
    assert again.status_code == 200
    assert again.json() == first.json()
    assert differences(before, snapshot(biller.db)) == {}


def test_the_same_reference_with_another_amount_is_a_conflict_and_changes_nothing(biller: Biller) -> None:
    biller.client.post("/api/v1/bbps/payments", json=payment(), headers=biller.headers())
    before = snapshot(biller.db)
    response = biller.client.post(
        "/api/v1/bbps/payments", json=payment(amount=60_000), headers=biller.headers()
    )
    assert_problem(response, 409, "idempotency_conflict")
    assert differences(before, snapshot(biller.db)) == {}


def test_the_status_check_returns_the_answer_or_unknown_transaction(biller: Biller) -> None:
    paid = biller.client.post("/api/v1/bbps/payments", json=payment(), headers=biller.headers()).json()
    status = biller.client.get("/api/v1/bbps/payments/CC0123456789", headers=biller.headers())
    assert status.status_code == 200
    assert status.json() == paid
    assert_problem(
        biller.client.get("/api/v1/bbps/payments/CC9999999999", headers=biller.headers()),
        404,
        "unknown_transaction",
    )


def test_an_absent_or_forged_key_is_unauthenticated_and_changes_nothing(biller: Biller) -> None:
    before = snapshot(biller.db)
    assert_problem(biller.client.post("/api/v1/bbps/payments", json=payment()), 401, "unauthenticated")
    forged = biller.key[:-4] + ("AAAA" if not biller.key.endswith("AAAA") else "BBBB")
    assert_problem(
        biller.client.post("/api/v1/bbps/payments", json=payment(), headers=biller.headers(forged)),
        401,
        "unauthenticated",
    )
    assert differences(before, snapshot(biller.db)) == {}


def test_a_key_without_the_bbps_scope_is_forbidden(biller: Biller) -> None:
    other = make_api_key(biller.db, biller.tenant, ["customers:read"])
    before = snapshot(biller.db)
    response = biller.client.post("/api/v1/bbps/payments", json=payment(), headers=biller.headers(other))
    assert_problem(response, 403, "forbidden")
    assert differences(before, snapshot(biller.db)) == {}


def test_an_amount_outside_the_limits_is_refused_and_changes_nothing(biller: Biller) -> None:
    before = snapshot(biller.db)
    low = biller.client.post("/api/v1/bbps/payments", json=payment(amount=4_999), headers=biller.headers())
    high = biller.client.post(
        "/api/v1/bbps/payments", json=payment(ref="CC0123456790", amount=5_000_001), headers=biller.headers()
    )
    assert_problem(low, 422, "amount_out_of_range")
    assert_problem(high, 422, "amount_out_of_range")
    assert differences(before, snapshot(biller.db)) == {}


def test_malformed_notifications_are_validation_errors_and_change_nothing(biller: Biller) -> None:
    before = snapshot(biller.db)
    for body in (
        payment(amount="500.00"),
        payment(paid_at="2026-04-01T10:00:00"),  # no offset: ambiguous
        payment(payment_mode="Cheque"),
        payment(ref="CC-01"),
    ):
        assert_problem(
            biller.client.post("/api/v1/bbps/payments", json=body, headers=biller.headers()),
            422,
            "validation_error",
        )
    assert differences(before, snapshot(biller.db)) == {}


def test_a_fetch_reference_of_another_consumer_is_refused(biller: Biller) -> None:
    response = biller.client.post(
        "/api/v1/bbps/payments", json=payment(fetch_reference="BFNOSUCHFETCH"), headers=biller.headers()
    )
    assert_problem(response, 422, "fetch_reference_invalid")


def test_the_bbps_token_credits_the_simulated_meter_exactly_gas_credit_paise(biller: Biller) -> None:
    body = biller.client.post("/api/v1/bbps/payments", json=payment(), headers=biller.headers()).json()
    simulated = meter_on_the_wall(
        biller.db, biller.tenant.id, "SIM1", start=utcnow(), tariff_paise_per_scm=4_000
    )
    outcomes = [simulated.enter_token(t["token"]).outcome for t in body["tokens"]]
    assert outcomes[-1] is AcceptOutcome.CREDIT_ADDED
    assert simulated.credit == body["gas_credit_paise"]
    assert body["gas_credit_paise"] == 48_550  # ₹500 less 3 % VAT (₹14.57), rounded up to whole tenths
