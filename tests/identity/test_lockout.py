"""Repeated bad logins lock the account, with back-off; the lock is lifted by time alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from citygas.identity.rules import lockout_for
from citygas.platform import time as clock
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import Database
from tests.identity.conftest import PASSWORD, Staff, add_staff, read_user
from tests.identity.test_staff_login import WRONG, post_login, session_count

T0 = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failures", "lock"),
    [
        (0, None),
        (4, None),
        (5, timedelta(seconds=30)),
        (6, timedelta(seconds=60)),
        (7, timedelta(seconds=120)),
        (11, timedelta(seconds=1920)),
        (12, timedelta(hours=1)),
        (50, timedelta(hours=1)),
    ],
)
def test_lockout_starts_at_the_threshold_doubles_and_stops_at_an_hour(
    failures: int, lock: timedelta | None
) -> None:
    assert lockout_for(failures, threshold=5) == lock


def test_lockout_follows_the_threshold_it_is_given() -> None:
    assert (lockout_for(2, threshold=3), lockout_for(3, threshold=3)) == (None, timedelta(seconds=30))


def fail(client: TestClient, staff: Staff, times: int) -> None:
    for _ in range(times):
        response = post_login(client, staff.username, "not-the-password")
        assert (response.status_code, WRONG in response.text) == (401, True)


@pytest.fixture
def office(db: Database, alpha: Tenant) -> Staff:
    clock.freeze(T0)
    return add_staff(db, alpha, "alpha.office", ["back_office"])


def test_four_failures_do_not_lock(app_client: TestClient, db: Database, office: Staff) -> None:
    fail(app_client, office, 4)

    response = post_login(app_client, office.username, PASSWORD)

    assert response.status_code == 303
    assert read_user(db, office.id).failed_logins == 0


def test_the_fifth_failure_locks_for_30_seconds(app_client: TestClient, db: Database, office: Staff) -> None:
    fail(app_client, office, 5)

    user = read_user(db, office.id)
    assert (user.failed_logins, user.locked_until) == (5, T0 + timedelta(seconds=30))


def test_while_locked_the_right_password_is_refused(
    app_client: TestClient, db: Database, office: Staff
) -> None:
    fail(app_client, office, 5)
    clock.freeze(T0 + timedelta(seconds=28))

    response = post_login(app_client, office.username, PASSWORD)

    assert response.status_code == 401
    assert "Too many failed attempts. Try again in 2 seconds." in response.text
    assert session_count(db) == 0


def test_attempts_while_locked_neither_count_nor_extend_the_lock(
    app_client: TestClient,
    db: Database,
    office: Staff,
) -> None:
    fail(app_client, office, 5)

    for _ in range(3):
        response = post_login(app_client, office.username, "not-the-password")
        assert "Too many failed attempts. Try again in 30 seconds." in response.text

    user = read_user(db, office.id)
    assert (user.failed_logins, user.locked_until) == (5, T0 + timedelta(seconds=30))


def test_the_right_password_is_accepted_once_the_lock_expires(
    app_client: TestClient,
    db: Database,
    office: Staff,
) -> None:
    fail(app_client, office, 5)
    clock.freeze(T0 + timedelta(seconds=30))

    response = post_login(app_client, office.username, PASSWORD)

    assert (response.status_code, response.headers["location"]) == (303, "/ops/")
    user = read_user(db, office.id)
    assert (user.failed_logins, user.locked_until) == (0, None)


def test_a_failure_after_the_lock_expires_locks_for_twice_as_long(
    app_client: TestClient,
    db: Database,
    office: Staff,
) -> None:
    fail(app_client, office, 5)
    expired = T0 + timedelta(seconds=30)
    clock.freeze(expired)

    fail(app_client, office, 1)

    assert read_user(db, office.id).locked_until == expired + timedelta(seconds=60)
    clock.freeze(expired + timedelta(seconds=59))
    assert post_login(app_client, office.username, PASSWORD).status_code == 401
    clock.freeze(expired + timedelta(seconds=60))
    assert post_login(app_client, office.username, PASSWORD).status_code == 303


def test_a_successful_login_starts_the_count_again(
    app_client: TestClient, db: Database, office: Staff
) -> None:
    fail(app_client, office, 4)
    post_login(app_client, office.username, PASSWORD)

    fail(app_client, office, 4)

    user = read_user(db, office.id)
    assert (user.failed_logins, user.locked_until) == (4, None)
