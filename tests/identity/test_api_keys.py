"""B2B clients call the API with a key a CGD manager created: shown once, stored as a SHA-256, scoped."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from citygas.identity.models import ApiKey
from citygas.identity.rules import API_KEY_SCOPES
from citygas.identity.service import sha256_hex
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import Database
from tests.conftest import csrf_from, login
from tests.identity.conftest import PASSWORD, add_staff, register_customer
from tests.web.db_snapshot import cells_containing, differences, snapshot

KEY_RE = re.compile(r'data-testid="new-api-key">(cg_[0-9a-f]{12}_[A-Za-z0-9_-]+)<')
PROBLEM = "application/problem+json"


@pytest.fixture
def manager(app_client: TestClient, db: Database, alpha: Tenant) -> TestClient:
    """A CGD manager of Alpha Gas, logged in, with one customer on the books."""
    add_staff(db, alpha, "alpha.manager", ["cgd_manager"])
    register_customer(db, alpha, name="Sunita Kulkarni", phone="9876501234")
    login(app_client, "alpha.manager", PASSWORD)
    return app_client


def create_key(client: TestClient, name: str, scopes: list[str]) -> Response:
    token = csrf_from(client.get("/cgd/api-keys").text)
    response: Response = client.post(
        "/cgd/api-keys", data={"name": name, "scopes": scopes, "csrf_token": token}
    )
    return response


def new_key(
    client: TestClient, name: str = "SAP IS-U customer sync", scopes: tuple[str, ...] = ("customers:read",)
) -> str:
    response = create_key(client, name, list(scopes))
    assert response.status_code == 200, response.text
    match = KEY_RE.search(response.text)
    assert match, "the new key is not shown"
    return match.group(1)


def api(client: TestClient, path: str, key: str) -> Response:
    response: Response = TestClient(client.app).get(path, headers={"Authorization": f"Bearer {key}"})
    return response


def assert_problem(response: Response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert (body["status"], body["code"], body["type"]) == (
        status,
        code,
        f"https://citygas.dev/problems/{code}",
    )


def test_a_new_key_is_shown_once(manager: TestClient, db: Database) -> None:
    key = new_key(manager)

    again = manager.get("/cgd/api-keys")

    assert key not in again.text
    prefix = key.split("_")[1]
    assert f"cg_{prefix}_…" in again.text
    with db.system(read_only=True) as uow:
        row = uow.session.execute(select(ApiKey)).scalar_one()
    assert (row.name, row.prefix, row.scopes, row.revoked_at) == (
        "SAP IS-U customer sync",
        prefix,
        ["customers:read"],
        None,
    )
    assert row.created_by == "Alpha Manager (alpha.manager)"


def test_only_a_sha256_of_the_secret_is_stored(manager: TestClient, db: Database) -> None:
    key = new_key(manager)
    secret = key.split("_", 2)[2]

    assert cells_containing(db, secret) == []
    assert cells_containing(db, key) == []
    with db.system(read_only=True) as uow:
        assert uow.session.execute(select(ApiKey.secret_hash)).scalar_one() == sha256_hex(secret)


def test_a_key_reads_the_customers_of_its_tenant(manager: TestClient) -> None:
    key = new_key(manager)

    response = api(manager, "/api/v1/customers", key)

    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {
                "consumer_number": "ALP-C-00000001",
                "name": "Sunita Kulkarni",
                "status": "registered",
                "charge_area_code": "ALP-CA1",
                "phone_masked": "••••••1234",
            }
        ],
        "next_cursor": None,
    }


def test_a_revoked_key_gets_401(manager: TestClient, db: Database) -> None:
    key = new_key(manager)
    with db.system(read_only=True) as uow:
        key_id = uow.session.execute(select(ApiKey.id)).scalar_one()
    token = csrf_from(manager.get("/cgd/api-keys").text)

    revoked = manager.post(
        f"/cgd/api-keys/{key_id}/revoke", data={"csrf_token": token}, follow_redirects=False
    )

    assert (revoked.status_code, revoked.headers["location"]) == (303, "/cgd/api-keys")
    response = api(manager, "/api/v1/customers", key)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_key_without_the_scope_gets_403_forbidden(manager: TestClient) -> None:
    key = new_key(manager, "Area sync", ("areas:read",))

    response = api(manager, "/api/v1/customers", key)

    assert_problem(response, 403, "forbidden")
    assert response.json()["detail"] == "Your role does not allow this (customer.view)"
    assert api(manager, "/api/v1/areas", key).status_code == 200


def test_a_key_is_refused_without_a_scope(manager: TestClient, db: Database) -> None:
    response = create_key(manager, "No scopes", [])

    assert response.status_code == 422
    assert f"Choose scopes from {', '.join(sorted(API_KEY_SCOPES))}" in response.text
    with db.system(read_only=True) as uow:
        assert uow.session.execute(select(func.count()).select_from(ApiKey)).scalar_one() == 0


def test_a_cgd_viewer_cannot_create_keys(app_client: TestClient, db: Database, alpha: Tenant) -> None:
    add_staff(db, alpha, "alpha.viewer", ["cgd_viewer"])
    login(app_client, "alpha.viewer", PASSWORD)
    token = csrf_from(app_client.get("/account").text)
    before = snapshot(db)

    response = app_client.post(
        "/cgd/api-keys", data={"name": "Mine", "scopes": ["customers:read"], "csrf_token": token}
    )

    assert response.status_code == 403
    assert differences(before, snapshot(db)) == {}


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer ",
        "Bearer cg_",
        "Bearer cg_0123456789ab",
        "Bearer cg_0123456789ab_not-the-secret",
        "Basic YWxwaGEubWFuYWdlcjpjb3JyZWN0LWhvcnNlLWJhdHRlcnk=",
        "Token cg_0123456789ab_x",
        "cg_0123456789ab_x",
    ],
)
def test_a_malformed_or_unknown_authorization_header_gets_401(
    manager: TestClient, authorization: str
) -> None:
    response = TestClient(manager.app).get("/api/v1/customers", headers={"Authorization": authorization})

    assert_problem(response, 401, "unauthenticated")


def test_a_key_with_a_tampered_secret_gets_401(manager: TestClient) -> None:
    key = new_key(manager)
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")

    assert_problem(api(manager, "/api/v1/customers", tampered), 401, "unauthenticated")


def test_revoking_an_unknown_key_is_404_and_changes_nothing(manager: TestClient, db: Database) -> None:
    new_key(manager)
    token = csrf_from(manager.get("/cgd/api-keys").text)
    before = snapshot(db)

    response = manager.post(f"/cgd/api-keys/{uuid.uuid4()}/revoke", data={"csrf_token": token})

    assert response.status_code == 404
    assert differences(before, snapshot(db)) == {}
