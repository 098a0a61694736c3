"""Errors are `application/problem+json` with a stable `code` on the API and a readable page in the
portals; health, readiness and metrics answer load balancers and Prometheus; request ids are echoed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import text

from citygas.identity.rules import Role
from citygas.platform.migrations import head_revision
from citygas.platform.uow import Database
from tests.conftest import login
from tests.web.conftest import Populated

PROBLEM = "application/problem+json"
PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "instance"}


def assert_problem(response: Response, status: int, code: str, title: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert (body["type"], body["title"], body["status"], body["code"], body["instance"]) == (
        f"https://citygas.dev/problems/{code}",
        title,
        status,
        code,
        response.request.url.path,
    )
    return body


@pytest.fixture
def api(app_client: TestClient, populated: Populated) -> TestClient:
    """B's API client, holding every scope."""
    return TestClient(app_client.app, headers={"Authorization": f"Bearer {populated.b.api_key}"})


def test_no_credentials_on_the_api_is_401_problem(app_client: TestClient) -> None:
    body = assert_problem(
        app_client.get("/api/v1/customers"), 401, "unauthenticated", "Authentication required"
    )

    assert body["detail"] == "Send an API key as `Authorization: Bearer <key>`"


def test_a_missing_permission_on_the_api_is_403_problem(app_client: TestClient, populated: Populated) -> None:
    api = TestClient(
        app_client.app, headers={"Authorization": f"Bearer {populated.a.api_key}"}
    )  # customers:read

    body = assert_problem(api.get("/api/v1/audit"), 403, "forbidden", "Not allowed")

    assert body["detail"] == "Your role does not allow this (audit.view)"


def test_an_unknown_row_on_the_api_is_404_problem(api: TestClient) -> None:
    body = assert_problem(api.get("/api/v1/customers/BRV-C-99999999"), 404, "not_found", "Not found")

    assert body["detail"] == "no customer with consumer number BRV-C-99999999"


def test_invalid_input_on_the_api_is_422_problem_naming_the_field(api: TestClient) -> None:
    body = assert_problem(
        api.get("/api/v1/customers", params={"limit": "0"}), 422, "validation_error", "Invalid input"
    )

    assert str(body["detail"]).startswith("limit: ")
    assert body["errors"] == [
        {"loc": ["query", "limit"], "msg": "Input should be greater than or equal to 1"}
    ]


def test_an_unknown_api_path_is_404_problem(api: TestClient) -> None:
    body = assert_problem(api.get("/api/v1/no-such-thing"), 404, "not_found", "Not Found")

    assert body["detail"] == "Not Found"


def test_a_wrong_method_on_the_api_is_405_problem(api: TestClient) -> None:
    assert_problem(api.delete("/api/v1/customers"), 405, "method_not_allowed", "Method Not Allowed")


def test_a_problem_carries_the_request_id(api: TestClient) -> None:
    response = api.get("/api/v1/customers/BRV-C-99999999", headers={"X-Request-ID": "sap-sync-42"})

    assert response.json()["request_id"] == "sap-sync-42"


def test_a_page_shows_a_readable_error_page_not_json(app_client: TestClient, populated: Populated) -> None:
    login(app_client, populated.world.username(populated.world.a, Role.BACK_OFFICE), populated.world.password)

    response = app_client.get("/ops/customers/ALP-C-99999999", headers={"X-Request-ID": "page-404"})

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in response.text
    assert "<p>no customer with consumer number ALP-C-99999999</p>" in response.text
    assert "Reference: <code>not_found</code> · request page-404" in response.text


def test_a_forbidden_page_says_which_permission_is_missing(
    app_client: TestClient, populated: Populated
) -> None:
    login(app_client, populated.world.username(populated.world.a, Role.TECHNICIAN), populated.world.password)

    response = app_client.get("/ops/audit")

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Not allowed</h1>" in response.text
    assert "Your role does not allow this (audit.view)" in response.text


def test_an_unknown_page_is_a_readable_404(app_client: TestClient) -> None:
    response = app_client.get("/ops/no-such-page")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Not Found</h1>" in response.text


def test_a_page_without_login_redirects_to_the_login_page_and_back(app_client: TestClient) -> None:
    response = app_client.get("/ops/customers?q=Patil", follow_redirects=False)

    assert (response.status_code, response.headers["location"]) == (303, "/login?next=/ops/customers?q=Patil")


def test_healthz_says_ok(app_client: TestClient) -> None:
    response = app_client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_ready_with_the_schema_at_head(app_client: TestClient) -> None:
    response = app_client.get("/readyz")

    assert (response.status_code, response.json()) == (200, {"status": "ready"})


@pytest.fixture
def schema_behind(db: Database) -> Iterator[None]:
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    try:
        yield
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision()})


def test_readyz_is_unavailable_while_the_schema_is_behind(
    app_client: TestClient, schema_behind: None
) -> None:
    response = app_client.get("/readyz")

    assert (response.status_code, response.json()) == (
        503,
        {"status": "unavailable", "reason": f"schema at older, code expects {head_revision()}"},
    )


def test_metrics_count_requests_by_route_template(app_client: TestClient) -> None:
    app_client.get("/healthz")

    response = app_client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'citygas_http_requests_total{method="GET",route="/healthz",status="200"}' in response.text
    assert 'citygas_outbox_events{status="pending"} 0' in response.text


def test_a_request_id_sent_is_echoed(app_client: TestClient) -> None:
    response = app_client.get("/healthz", headers={"X-Request-ID": "lb-7f3a"})

    assert response.headers["x-request-id"] == "lb-7f3a"


def test_a_request_without_an_id_gets_one(app_client: TestClient) -> None:
    first = app_client.get("/healthz").headers["x-request-id"]
    second = app_client.get("/healthz").headers["x-request-id"]

    assert len(first) == 32
    assert int(first, 16) >= 0
    assert first != second


def test_an_overlong_request_id_is_replaced(app_client: TestClient) -> None:
    response = app_client.get("/healthz", headers={"X-Request-ID": "x" * 65})

    assert len(response.headers["x-request-id"]) == 32
    assert response.headers["x-request-id"] != "x" * 65
