"""Staff log in with a password (and a TOTP code once they turn it on); a session cookie carries them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pyotp
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from citygas.identity.models import StaffUser, WebSession
from citygas.identity.rules import Role, home_for, permissions_for
from citygas.identity.service import enable_totp, sha256_hex
from citygas.platform import time as clock
from citygas.platform.errors import ValidationFailed
from citygas.platform.settings import Settings
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import Database
from citygas.web.app import create_app
from citygas.web.deps import SESSION_COOKIE
from tests.conftest import TEST_ACTOR, csrf_from, make_tenant
from tests.identity.conftest import PASSWORD, add_staff, read_user
from tests.web.db_snapshot import cells_containing

WRONG = "Wrong username or password"
T0 = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)


def post_login(
    client: TestClient, username: str, password: str, totp: str = "", next_path: str = ""
) -> Response:
    page = client.get("/login")
    response: Response = client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "totp": totp,
            "next": next_path,
            "csrf_token": csrf_from(page.text),
        },
        follow_redirects=False,
    )
    return response


def session_count(db: Database) -> int:
    with db.system(read_only=True) as uow:
        return int(uow.session.execute(select(func.count()).select_from(WebSession)).scalar_one())


def set_cookie_header(response: Response) -> str:
    headers = [
        v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(SESSION_COOKIE)
    ]
    assert len(headers) == 1, headers
    return str(headers[0])


HOMES = {
    Role.OPERATOR_ADMIN: "/ops/admin/tenants",
    Role.CGD_MANAGER: "/cgd/",
    Role.CGD_VIEWER: "/cgd/",
    Role.BACK_OFFICE: "/ops/",
    Role.STORE_KEEPER: "/ops/",
    Role.FIELD_SUPERVISOR: "/ops/",
    Role.TECHNICIAN: "/field/",
    Role.METER_READER: "/field/",
    Role.CARE_AGENT: "/ops/",
    Role.CSC_AGENT: "/agent/",
}


# --- success --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_login_redirects_each_role_to_its_home_page_which_opens(
    app_client: TestClient,
    db: Database,
    alpha: Tenant,
    role: Role,
) -> None:
    # Only the service provider's own staff may be operator admins.
    tenant = make_tenant(db, "operator", "OPS", kind="operator") if role is Role.OPERATOR_ADMIN else alpha
    add_staff(db, tenant, f"{tenant.slug}.{role.value}", [role.value])

    response = post_login(app_client, f"{tenant.slug}.{role.value}", PASSWORD)

    assert response.status_code == 303
    assert response.headers["location"] == HOMES[role] == home_for(permissions_for(frozenset({role.value})))
    assert app_client.get(HOMES[role]).status_code == 200


def test_a_successful_login_records_the_time_and_opens_one_session(
    app_client: TestClient,
    db: Database,
    alpha: Tenant,
) -> None:
    clock.freeze(T0)
    staff = add_staff(db, alpha, "alpha.manager", ["cgd_manager"])

    post_login(app_client, "Alpha.Manager ", PASSWORD)  # usernames are case-insensitive and trimmed

    user = read_user(db, staff.id)
    assert (user.last_login_at, user.failed_logins, user.locked_until) == (T0, 0, None)
    assert session_count(db) == 1


def test_login_follows_a_same_site_next_path(app_client: TestClient, db: Database, alpha: Tenant) -> None:
    add_staff(db, alpha, "alpha.office", ["back_office"])

    response = post_login(app_client, "alpha.office", PASSWORD, next_path="/ops/customers?q=Patil")

    assert response.headers["location"] == "/ops/customers?q=Patil"


@pytest.mark.parametrize("next_path", ["//evil.example/phish", "https://evil.example/", "/\\evil.example"])
def test_login_ignores_a_next_path_that_leaves_the_site(
    app_client: TestClient,
    db: Database,
    alpha: Tenant,
    next_path: str,
) -> None:
    add_staff(db, alpha, "alpha.office", ["back_office"])

    response = post_login(app_client, "alpha.office", PASSWORD, next_path=next_path)

    assert response.headers["location"] == "/ops/"


# --- refusals -------------------------------------------------------------------------------------


def test_a_wrong_password_is_refused_with_a_generic_message(
    app_client: TestClient,
    db: Database,
    alpha: Tenant,
) -> None:
    staff = add_staff(db, alpha, "alpha.office", ["back_office"])

    response = post_login(app_client, "alpha.office", "not-the-password")

    assert response.status_code == 401
    assert WRONG in response.text
    assert SESSION_COOKIE not in response.cookies
    assert read_user(db, staff.id).failed_logins == 1
    assert session_count(db) == 0


def test_an_unknown_username_gets_the_same_message_as_a_wrong_password(
    app_client: TestClient,
    db: Database,
    alpha: Tenant,
) -> None:
    add_staff(db, alpha, "alpha.office", ["back_office"])

    unknown = post_login(app_client, "alpha.nobody", "not-the-password")
    wrong = post_login(app_client, "alpha.office", "not-the-password")

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.text.replace("alpha.nobody", "USER") == wrong.text.replace("alpha.office", "USER")
    assert session_count(db) == 0


def test_a_disabled_user_is_refused_even_with_the_right_password(
    app_client: TestClient,
    db: Database,
    alpha: Tenant,
) -> None:
    staff = add_staff(db, alpha, "alpha.office", ["back_office"])
    with db.unit_of_work(tenant=alpha.id, actor=TEST_ACTOR) as uow:
        user = uow.session.get(StaffUser, staff.id)
        assert user is not None
        user.active = False
        uow.commit()

    response = post_login(app_client, "alpha.office", PASSWORD)

    assert response.status_code == 401
    assert "This account is disabled. Ask your administrator." in response.text
    assert session_count(db) == 0


def test_disabling_a_user_ends_the_sessions_they_already_have(
    app_client: TestClient,
    db: Database,
    alpha: Tenant,
) -> None:
    staff = add_staff(db, alpha, "alpha.office", ["back_office"])
    post_login(app_client, "alpha.office", PASSWORD)
    assert app_client.get("/ops/").status_code == 200
    with db.unit_of_work(tenant=alpha.id, actor=TEST_ACTOR) as uow:
        user = uow.session.get(StaffUser, staff.id)
        assert user is not None
        user.active = False
        uow.commit()

    response = app_client.get("/ops/", follow_redirects=False)

    assert (response.status_code, response.headers["location"]) == (303, "/login?next=/ops/")


# --- TOTP -----------------------------------------------------------------------------------------

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def turn_on_totp(db: Database, tenant: Tenant, user_id: object) -> pyotp.TOTP:
    totp = pyotp.TOTP(SECRET)
    with db.unit_of_work(tenant=tenant.id, actor=TEST_ACTOR) as uow:
        user = uow.session.get(StaffUser, user_id)
        assert user is not None
        enable_totp(uow.session, user, secret=SECRET, code=totp.now())
        uow.commit()
    return totp


def a_code_that_is_not_valid_now(totp: pyotp.TOTP) -> str:
    valid = {totp.at(datetime.now(UTC).timestamp() + step * 30) for step in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)


def test_with_totp_on_the_password_alone_is_not_enough(
    app_client: TestClient, db: Database, alpha: Tenant
) -> None:
    staff = add_staff(db, alpha, "alpha.office", ["back_office"])
    turn_on_totp(db, alpha, staff.id)

    response = post_login(app_client, "alpha.office", PASSWORD)

    assert response.status_code == 401
    assert "The authenticator code is wrong or has expired" in response.text
    assert read_user(db, staff.id).failed_logins == 1
    assert session_count(db) == 0


def test_with_totp_on_a_wrong_code_is_refused(app_client: TestClient, db: Database, alpha: Tenant) -> None:
    staff = add_staff(db, alpha, "alpha.office", ["back_office"])
    totp = turn_on_totp(db, alpha, staff.id)

    response = post_login(app_client, "alpha.office", PASSWORD, totp=a_code_that_is_not_valid_now(totp))

    assert response.status_code == 401
    assert "The authenticator code is wrong or has expired" in response.text
    assert session_count(db) == 0


def test_with_totp_on_the_current_code_logs_in(app_client: TestClient, db: Database, alpha: Tenant) -> None:
    staff = add_staff(db, alpha, "alpha.office", ["back_office"])
    totp = turn_on_totp(db, alpha, staff.id)

    response = post_login(app_client, "alpha.office", PASSWORD, totp=totp.now())

    assert (response.status_code, response.headers["location"]) == (303, "/ops/")


def test_with_totp_on_a_right_code_does_not_rescue_a_wrong_password(
    app_client: TestClient,
    db: Database,
    alpha: Tenant,
) -> None:
    staff = add_staff(db, alpha, "alpha.office", ["back_office"])
    totp = turn_on_totp(db, alpha, staff.id)

    response = post_login(app_client, "alpha.office", "not-the-password", totp=totp.now())

    assert response.status_code == 401
    assert WRONG in response.text


def test_totp_is_not_turned_on_by_a_code_that_does_not_match(db: Database, alpha: Tenant) -> None:
    staff = add_staff(db, alpha, "alpha.office", ["back_office"])
    wrong = a_code_that_is_not_valid_now(pyotp.TOTP(SECRET))

    with db.unit_of_work(tenant=alpha.id, actor=TEST_ACTOR) as uow:
        user = uow.session.get(StaffUser, staff.id)
        assert user is not None
        with pytest.raises(ValidationFailed, match="That code does not match"):
            enable_totp(uow.session, user, secret=SECRET, code=wrong)
        uow.commit()

    assert read_user(db, staff.id).totp_secret is None


def test_totp_is_turned_on_from_the_account_page(app_client: TestClient, db: Database, alpha: Tenant) -> None:
    staff = add_staff(db, alpha, "alpha.office", ["back_office"])
    post_login(app_client, "alpha.office", PASSWORD)
    token = csrf_from(app_client.get("/account").text)

    response = app_client.post(
        "/account/totp",
        data={"secret": SECRET, "code": pyotp.TOTP(SECRET).now(), "csrf_token": token},
        follow_redirects=False,
    )

    assert (response.status_code, response.headers["location"]) == (303, "/account")
    assert read_user(db, staff.id).totp_secret == SECRET


# --- the session cookie ---------------------------------------------------------------------------


def test_the_session_cookie_is_httponly_and_same_site_lax_but_not_secure_outside_production(
    app_client: TestClient,
    db: Database,
    alpha: Tenant,
) -> None:
    add_staff(db, alpha, "alpha.office", ["back_office"])

    header = set_cookie_header(post_login(app_client, "alpha.office", PASSWORD)).lower()

    attributes = {part.strip().split("=")[0] for part in header.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=lax" in header
    assert "max-age=43200" in header  # session_hours = 12
    assert "secure" not in attributes


def test_the_session_cookie_is_secure_in_production(db: Database, alpha: Tenant, database_url: str) -> None:
    add_staff(db, alpha, "alpha.office", ["back_office"])
    settings = Settings(
        environment="production",
        database_url=database_url,
        log_json=False,
        master_key=base64.b64encode(bytes(range(32))).decode(),
    )
    app = create_app(settings, db=db, run_worker=False)

    with TestClient(app, base_url="https://testserver") as client:
        header = set_cookie_header(post_login(client, "alpha.office", PASSWORD)).lower()

    attributes = {part.strip().split("=")[0] for part in header.split(";")[1:]}
    assert {"httponly", "secure"} <= attributes
    assert "samesite=lax" in header


def test_only_a_hash_of_the_session_cookie_is_stored(
    app_client: TestClient, db: Database, alpha: Tenant
) -> None:
    add_staff(db, alpha, "alpha.office", ["back_office"])

    post_login(app_client, "alpha.office", PASSWORD)

    token = app_client.cookies[SESSION_COOKIE]
    assert cells_containing(db, token) == []
    with db.system(read_only=True) as uow:
        stored = uow.session.execute(select(WebSession.token_hash)).scalar_one()
    assert stored == sha256_hex(token)


def test_logout_revokes_the_session_so_the_old_cookie_no_longer_works(
    app_client: TestClient,
    db: Database,
    alpha: Tenant,
) -> None:
    clock.freeze(T0)
    add_staff(db, alpha, "alpha.office", ["back_office"])
    post_login(app_client, "alpha.office", PASSWORD)
    old_cookie = app_client.cookies[SESSION_COOKIE]
    token = csrf_from(app_client.get("/account").text)

    response = app_client.post("/logout", data={"csrf_token": token}, follow_redirects=False)

    assert (response.status_code, response.headers["location"]) == (303, "/login")
    with db.system(read_only=True) as uow:
        assert uow.session.execute(select(WebSession.revoked_at)).scalar_one() == T0
    replay = TestClient(app_client.app, cookies={SESSION_COOKIE: old_cookie})
    assert replay.get("/api/v1/me").status_code == 401
    page = replay.get("/ops/", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=/ops/")
