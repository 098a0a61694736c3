"""The customer app's top-up form: a household pays for its own connections only, and every bad entry
gets a readable message on the same page, with nothing created (the happy path runs in the browser tests
and tests/metering/test_end_to_end.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citygas.payments.gateway.models import GatewayOrder
from citygas.platform.uow import Database
from tests.care.conftest import Care, csrf, household_client

LIMITS = "a top-up is between ₹50.00 and ₹50,000.00"


def _orders(db: Database) -> int:
    with db.system(read_only=True) as uow:
        return int(uow.session.execute(select(func.count()).select_from(GatewayOrder)).scalar_one())


def _top_up(client: TestClient, **form: str) -> tuple[int, str]:
    token = csrf(client, "/app/topup")
    response = client.post("/app/topup", data={"csrf_token": token, **form}, follow_redirects=False)
    return response.status_code, response.text


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"consumer_number": "ALP-C-00000001", "amount": "", "preset": ""}, "Choose an amount or type one."),
        ({"consumer_number": "ALP-C-00000001", "amount": "five hundred"}, "Type the amount in rupees"),
        (
            {"consumer_number": "ALP-C-00000001", "amount": "-500"},
            "a top-up is between ₹50.00 and ₹50,000.00",
        ),
        ({"consumer_number": "ALP-C-00000001", "amount": "500", "method": "cash"}, "Choose UPI or card."),
        ({"consumer_number": "ALP-C-00000002", "amount": "500"}, "Choose one of your connections."),
        ({"consumer_number": "BRV-C-00000001", "amount": "500"}, "Choose one of your connections."),
    ],
    ids=["no-amount", "words", "negative", "unknown-method", "neighbours-connection", "other-cgd"],
)
def test_a_bad_top_up_is_explained_on_the_form_and_creates_no_order(
    app: TestClient, db: Database, care: Care, form: dict[str, str], message: str
) -> None:
    asha = household_client(app, db, care.asha)
    before = _orders(db)

    status, page = _top_up(asha, **form)

    assert status in (400, 404, 409, 422), status
    assert message in page
    assert 'action="/app/topup"' in page  # the same form, to put it right
    assert _orders(db) == before


def test_an_amount_outside_the_limits_is_explained_and_creates_no_order(
    app: TestClient, db: Database, care: Care
) -> None:
    asha = household_client(app, db, care.asha)
    before = _orders(db)

    status, page = _top_up(asha, consumer_number="ALP-C-00000001", amount="10")

    assert (status, _orders(db)) == (422, before)
    assert LIMITS in page


def test_a_good_top_up_goes_to_the_checkout_with_one_order(app: TestClient, db: Database, care: Care) -> None:
    asha = household_client(app, db, care.asha)
    before = _orders(db)

    status, _ = _top_up(asha, consumer_number="ALP-C-00000001", preset="500", method="upi")

    assert status == 303
    assert _orders(db) == before + 1
