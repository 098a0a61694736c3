"""`POST /api/v1/vends` as the CGD's own systems call it."""

import pytest
from fastapi.testclient import TestClient

from citygas.identity.service import do_create_api_key
from citygas.platform.uow import Database
from tests.vending.conftest import Shop


@pytest.fixture
def api(db: Database, shop: Shop, app_client: TestClient) -> TestClient:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        _, secret = do_create_api_key(uow.session, name="SAP", scopes=["vend"], created_by="test")
        uow.commit()
    app_client.headers["Authorization"] = f"Bearer {secret}"
    return app_client


def _post(client: TestClient, body: dict[str, object], key: str = "idem-1") -> object:
    return client.post("/api/v1/vends", json=body, headers={"Idempotency-Key": key})


def test_a_vend_answers_201_with_what_an_sts_receipt_shows(api: TestClient) -> None:
    response = _post(api, {"consumer_number": "ALP-C-00000001", "amount_paise": 50_000})
    body = response.json()  # type: ignore[attr-defined]
    assert response.status_code == 201  # type: ignore[attr-defined]
    assert (body["receipt_number"], body["gas_credit_paise"], body["channel"]) == (
        "ALP-R-00000001",
        48_550,
        "b2b",
    )
    assert body["meter"] == {
        "serial": "SN0001",
        "sts_meter_number": "600727000000000017",
        "sgc": "123457",
        "krn": 1,
        "ti": 1,
        "base_date": 2014,
    }
    assert [(t["kind"], len(t["token"])) for t in body["tokens"]] == [("set_tariff_rate", 20), ("credit", 20)]
    assert api.get(f"/api/v1/vends/{body['vend_id']}").json() == body


def test_a_retry_with_the_same_key_and_body_gets_the_same_body_with_200(api: TestClient) -> None:
    first = _post(api, {"consumer_number": "ALP-C-00000001", "amount_paise": 50_000})
    again = _post(api, {"consumer_number": "ALP-C-00000001", "amount_paise": 50_000})
    assert again.status_code == 200  # type: ignore[attr-defined]
    assert again.json() == first.json()  # type: ignore[attr-defined]


def test_the_same_key_with_another_body_is_a_409_problem(api: TestClient) -> None:
    _post(api, {"consumer_number": "ALP-C-00000001", "amount_paise": 50_000})
    clash = _post(api, {"consumer_number": "ALP-C-00000001", "amount_paise": 70_000})
    assert clash.status_code == 409  # type: ignore[attr-defined]
    assert clash.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    assert clash.json()["code"] == "idempotency_conflict"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"consumer_number": "ALP-C-00000001", "amount_paise": 100}, 422, "amount_out_of_range"),
        ({"consumer_number": "ALP-C-00000001", "amount_paise": 500.5}, 422, "validation_error"),
        (
            {"consumer_number": "ALP-C-00000001", "meter_serial": "SN0001", "amount_paise": 50_000},
            422,
            "validation_error",
        ),
        ({"consumer_number": "NOBODY", "amount_paise": 50_000}, 404, "not_found"),
        (
            {"consumer_number": "ALP-C-00000001", "amount_paise": 50_000, "channel": "online"},
            403,
            "forbidden",
        ),
    ],
)
def test_bad_input_gets_a_problem_with_a_stable_code_and_vends_nothing(
    api: TestClient,
    body: dict[str, object],
    status: int,
    code: str,
) -> None:
    response = _post(api, body)
    assert (response.status_code, response.json()["code"]) == (status, code)  # type: ignore[attr-defined]
    ok = _post(api, {"consumer_number": "ALP-C-00000001", "amount_paise": 50_000}, key="fresh")
    assert ok.json()["receipt_number"] == "ALP-R-00000001"  # type: ignore[attr-defined]


def test_the_idempotency_key_header_is_required(api: TestClient) -> None:
    response = api.post("/api/v1/vends", json={"consumer_number": "ALP-C-00000001", "amount_paise": 50_000})
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


def test_a_key_without_the_vend_scope_is_forbidden(db: Database, shop: Shop, app_client: TestClient) -> None:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        _, secret = do_create_api_key(
            uow.session, name="reader", scopes=["customers:read"], created_by="test"
        )
        uow.commit()
    response = app_client.post(
        "/api/v1/vends",
        json={"consumer_number": "ALP-C-00000001", "amount_paise": 50_000},
        headers={"Idempotency-Key": "x", "Authorization": f"Bearer {secret}"},
    )
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
