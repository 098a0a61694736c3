"""Households log in with a one-time code sent by SMS to the phone registered with their connection."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from citygas.customers.models import Customer
from citygas.identity.models import OtpChallenge, WebSession
from citygas.identity.service import sha256_hex
from citygas.notifications.ports import LogNotifier, notifier, use_notifier
from citygas.platform import time as clock
from citygas.platform.outbox import OutboxEvent, OutboxRelay
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import Database
from citygas.web.deps import SESSION_COOKIE
from tests.conftest import csrf_from
from tests.identity.conftest import register_customer

PHONE = "9876501234"
STRANGER = "9123409876"  # no connection is registered with this phone
WRONG_CODE = "The code is wrong or has expired. Try again or request a new one."
T0 = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_sms_log() -> Iterator[None]:
    """A log adapter of this test's own: the process-wide one remembers other tests' messages."""
    previous = notifier()
    use_notifier(LogNotifier())
    yield
    use_notifier(previous)


@pytest.fixture
def customer(db: Database, alpha: Tenant) -> Customer:
    clock.freeze(T0)
    return register_customer(db, alpha, name="Sunita Kulkarni", phone=PHONE)


def request_code(client: TestClient, phone: str) -> Response:
    token = csrf_from(client.get("/app/login").text)
    response: Response = client.post("/app/login", data={"phone": phone, "csrf_token": token})
    return response


def verify(client: TestClient, phone: str, code: str) -> Response:
    token = csrf_from(client.get("/app/login").text)
    response: Response = client.post(
        "/app/login/verify", data={"phone": phone, "code": code, "csrf_token": token}, follow_redirects=False
    )
    return response


def sms_sent_to(db: Database, phone: str) -> list[str]:
    """Relay the outbox as the worker would, and read what the (log) SMS adapter sent to `phone`."""
    OutboxRelay(db.write_sessions).relay_once()
    adapter = notifier()
    assert isinstance(adapter, LogNotifier)
    return [m.text for m in adapter.sent if m.to == phone and m.channel == "sms"]


def code_from(db: Database, phone: str) -> str:
    texts = sms_sent_to(db, phone)
    assert texts, f"no SMS was sent to {phone}"
    match = re.match(r"(\d{6}) is your ", texts[-1])
    assert match, texts[-1]
    return match.group(1)


def count(db: Database, model: type[object]) -> int:
    with db.system(read_only=True) as uow:
        return int(uow.session.execute(select(func.count()).select_from(model)).scalar_one())


def sms_events(db: Database) -> int:
    with db.system(read_only=True) as uow:
        return int(
            uow.session.execute(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.topic == "notification.requested")
            ).scalar_one()
        )


def wrong_code_for(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_a_registered_phone_is_sent_a_six_digit_code_by_sms(
    app_client: TestClient,
    db: Database,
    customer: Customer,
) -> None:
    response = request_code(app_client, "+91 98765 01234")

    assert response.status_code == 200
    assert f"If {PHONE} is registered, we have sent a 6-digit code by SMS." in response.text
    code = code_from(db, PHONE)
    assert sms_sent_to(db, PHONE)[-1] == (
        f"{code} is your Alpha Gas login code. It expires in 5 minutes. Never share it."
    )
    assert 'data-testid="dev-otp"' not in response.text  # the code is shown on the page in development only


def test_the_code_is_stored_only_as_a_hash(app_client: TestClient, db: Database, customer: Customer) -> None:
    request_code(app_client, PHONE)
    code = code_from(db, PHONE)

    with db.system(read_only=True) as uow:
        challenge = uow.session.execute(select(OtpChallenge)).scalar_one()
    assert challenge.code_hash == sha256_hex(f"{PHONE}:{code}")
    assert (challenge.phone, challenge.expires_at, challenge.attempts) == (
        PHONE,
        T0 + timedelta(minutes=5),
        0,
    )


def test_the_right_code_logs_the_household_in(
    app_client: TestClient, db: Database, customer: Customer
) -> None:
    request_code(app_client, PHONE)

    response = verify(app_client, PHONE, code_from(db, PHONE))

    assert (response.status_code, response.headers["location"]) == (303, "/app/")
    home = app_client.get("/app/")
    assert home.status_code == 200
    assert "Sunita Kulkarni" in home.text
    with db.system(read_only=True) as uow:
        session = uow.session.execute(select(WebSession)).scalar_one()
    assert (session.kind, session.customer_id, session.expires_at) == (
        "customer",
        customer.id,
        T0 + timedelta(days=30),
    )


def test_a_wrong_code_is_refused_and_counted(
    app_client: TestClient, db: Database, customer: Customer
) -> None:
    request_code(app_client, PHONE)
    code = code_from(db, PHONE)

    response = verify(app_client, PHONE, wrong_code_for(code))

    assert response.status_code == 401
    assert WRONG_CODE in response.text
    assert SESSION_COOKIE not in response.cookies
    with db.system(read_only=True) as uow:
        assert uow.session.execute(select(OtpChallenge.attempts)).scalar_one() == 1
    assert count(db, WebSession) == 0


def test_a_code_works_until_it_expires(app_client: TestClient, db: Database, customer: Customer) -> None:
    request_code(app_client, PHONE)
    clock.freeze(T0 + timedelta(seconds=299))

    assert verify(app_client, PHONE, code_from(db, PHONE)).status_code == 303


def test_an_expired_code_is_refused(app_client: TestClient, db: Database, customer: Customer) -> None:
    request_code(app_client, PHONE)
    clock.freeze(T0 + timedelta(seconds=300))

    response = verify(app_client, PHONE, code_from(db, PHONE))

    assert response.status_code == 401
    assert WRONG_CODE in response.text
    assert count(db, WebSession) == 0


def test_five_wrong_codes_spend_the_challenge_so_the_right_one_no_longer_works(
    app_client: TestClient,
    db: Database,
    customer: Customer,
) -> None:
    request_code(app_client, PHONE)
    code = code_from(db, PHONE)
    for _ in range(5):
        assert verify(app_client, PHONE, wrong_code_for(code)).status_code == 401

    response = verify(app_client, PHONE, code)

    assert response.status_code == 401
    with db.system(read_only=True) as uow:
        assert uow.session.execute(select(OtpChallenge.attempts)).scalar_one() == 5
    assert count(db, WebSession) == 0


def test_a_code_logs_in_once_only(app_client: TestClient, db: Database, customer: Customer) -> None:
    request_code(app_client, PHONE)
    code = code_from(db, PHONE)
    assert verify(app_client, PHONE, code).status_code == 303

    again = verify(TestClient(app_client.app), PHONE, code)

    assert again.status_code == 401
    assert count(db, WebSession) == 1


def test_a_sixth_code_in_an_hour_is_refused_with_429(
    app_client: TestClient, db: Database, customer: Customer
) -> None:
    for minute in range(5):
        clock.freeze(T0 + timedelta(minutes=minute))
        assert request_code(app_client, PHONE).status_code == 200

    response = request_code(app_client, PHONE)

    assert response.status_code == 429
    assert "Too many codes requested for this number. Try again in an hour." in response.text
    assert count(db, OtpChallenge) == 5
    assert len(sms_sent_to(db, PHONE)) == 5


def test_codes_may_be_requested_again_an_hour_later(
    app_client: TestClient, db: Database, customer: Customer
) -> None:
    for _ in range(5):
        request_code(app_client, PHONE)
    clock.freeze(T0 + timedelta(hours=1))

    assert request_code(app_client, PHONE).status_code == 200


def test_an_unregistered_phone_gets_the_same_answer_and_no_sms(
    app_client: TestClient,
    db: Database,
    customer: Customer,
) -> None:
    registered = request_code(app_client, PHONE)
    events_before = sms_events(db)

    stranger = request_code(app_client, STRANGER)

    assert stranger.status_code == registered.status_code == 200
    assert stranger.text.replace(STRANGER, "PHONE") == registered.text.replace(PHONE, "PHONE")
    assert sms_events(db) == events_before
    assert sms_sent_to(db, STRANGER) == []


def test_an_unregistered_phone_is_rate_limited_like_a_registered_one(
    app_client: TestClient,
    db: Database,
    customer: Customer,
) -> None:
    for _ in range(5):
        request_code(app_client, STRANGER)

    assert request_code(app_client, STRANGER).status_code == 429


def test_a_number_that_is_not_an_indian_mobile_is_refused(
    app_client: TestClient,
    db: Database,
    customer: Customer,
) -> None:
    response = request_code(app_client, "12345")

    assert response.status_code == 422
    assert "Enter a 10-digit Indian mobile number" in response.text
    assert count(db, OtpChallenge) == 0


def test_customer_logout_revokes_the_session(
    app_client: TestClient, db: Database, customer: Customer
) -> None:
    request_code(app_client, PHONE)
    verify(app_client, PHONE, code_from(db, PHONE))
    old_cookie = app_client.cookies[SESSION_COOKIE]
    token = csrf_from(app_client.get("/app/login").text)

    response = app_client.post("/app/logout", data={"csrf_token": token}, follow_redirects=False)

    assert (response.status_code, response.headers["location"]) == (303, "/app/login")
    replay = TestClient(app_client.app, cookies={SESSION_COOKIE: old_cookie})
    page = replay.get("/app/", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/app/login?next=/app/")
