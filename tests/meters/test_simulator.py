"""The simulator as a person and a phone reach it: pages with an LCD, keypad and button, and the signed
meter-link over a WebSocket. Tokens come from the registry, as a vend's would."""

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from citygas.meters.keys import meter_link_keys
from citygas.meters.link import (
    FrameError,
    ReadingSignatureError,
    ReadStatus,
    StatusResponse,
    encode_request,
    verify_reading,
)
from citygas.meters.service import do_meter_transition, do_register_meter
from citygas.meters.service import get_meter as get_meter_any_tenant
from citygas.meters.simulator import SimulatorHub
from citygas.meters.test_tokens import issue_demo_credit
from citygas.platform.settings import get_settings
from citygas.platform.uow import Database
from tests.conftest import csrf_from, login, make_tenant, make_user
from tests.meters.test_registry import _setup

PASSWORD = "a-long-password-1"


@pytest.fixture
def sim(db: Database, app_client: TestClient) -> tuple[TestClient, object]:
    tenant = _setup(db)
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        meter = do_register_meter(
            uow.session,
            serial="SIM1",
            sts_meter_number="600727000000000009",
            model_code="G1.6",
            vending_key_id="test",
            simulated=True,
        )
        for action in ("allocate", "install", "commission", "activate"):
            do_meter_transition(
                uow.session,
                meter,
                action,
                permissions=frozenset({"meter.manage", "meter.install"}),
                customer_number="ALP-C-00000001" if action == "install" else None,
            )
        uow.commit()
    make_user(db, tenant, "alpha.office", ["back_office"], PASSWORD)  # type: ignore[arg-type]
    login(app_client, "alpha.office", PASSWORD)
    return app_client, tenant


def _csrf(client: TestClient, serial: str = "SIM1") -> str:
    return csrf_from(client.get(f"/sim/meters/{serial}").text)


def test_a_new_simulated_meter_shows_no_credit_and_a_closed_valve(sim: tuple[TestClient, object]) -> None:
    client, _ = sim
    state = client.get("/sim/meters/SIM1/state.json").json()
    assert (state["credit"], state["valve"], state["lcd"][0]) == (0, "closed", "CREDIT ₹0.00")


def test_a_token_typed_on_the_keypad_credits_exactly_and_the_button_opens_the_valve(
    sim: tuple[TestClient, object],
    db: Database,
) -> None:
    client, _ = sim
    credit = issue_demo_credit(db, serial="SIM1", amount_text="123.45")
    csrf = _csrf(client)
    client.post("/sim/meters/SIM1/token", data={"token": credit.grouped, "csrf_token": csrf})
    armed = client.get("/sim/meters/SIM1/state.json").json()
    client.post("/sim/meters/SIM1/button", data={"csrf_token": csrf})
    opened = client.get("/sim/meters/SIM1/state.json").json()
    assert credit.carried_base_units == 12350  # ₹123.45 rounds up to whole tenths of a rupee
    assert (armed["credit"], armed["valve"], armed["lcd"][-1]) == (12350, "armed", "ACCEPTED +₹123.50")
    assert (opened["valve"], opened["tokens_accepted"]) == ("open", 1)


def test_the_same_token_twice_is_refused_as_used(sim: tuple[TestClient, object], db: Database) -> None:
    client, _ = sim
    credit = issue_demo_credit(db, serial="SIM1", amount_text="50")
    csrf = _csrf(client)
    client.post("/sim/meters/SIM1/token", data={"token": credit.token, "csrf_token": csrf})
    client.post("/sim/meters/SIM1/token", data={"token": credit.token, "csrf_token": csrf})
    state = client.get("/sim/meters/SIM1/state.json").json()
    assert (state["credit"], state["lcd"][-1]) == (5000, "REJECTED: USED")


def test_a_token_without_twenty_digits_is_a_readable_error_and_changes_nothing(
    sim: tuple[TestClient, object],
) -> None:
    client, _ = sim
    response = client.post("/sim/meters/SIM1/token", data={"token": "1234 5678", "csrf_token": _csrf(client)})
    assert response.status_code == 422
    assert "A token has 20 digits" in response.text
    assert client.get("/sim/meters/SIM1/state.json").json()["tokens_accepted"] == 0


def test_readings_over_the_websocket_are_signed_by_the_meter(
    sim: tuple[TestClient, object], db: Database
) -> None:
    client, tenant = sim
    credit = issue_demo_credit(db, serial="SIM1", amount_text="200")
    client.post("/sim/meters/SIM1/token", data={"token": credit.token, "csrf_token": _csrf(client)})
    with client.websocket_connect("/sim/meters/SIM1/link") as ws:
        ws.send_bytes(encode_request(ReadStatus(), 7))
        frame = ws.receive_bytes()
    reading_key, _ = meter_link_keys(get_settings().master_key_bytes, tenant.id, "SIM1")  # type: ignore[attr-defined]
    status = verify_reading(frame, reading_key)
    assert isinstance(status, StatusResponse)
    assert status.status.credit == 20000
    forged = bytearray(frame)
    forged[10] ^= 0x01
    with pytest.raises((ReadingSignatureError, FrameError)):
        verify_reading(bytes(forged), reading_key)


def test_another_tenants_user_cannot_reach_the_meter(sim: tuple[TestClient, object], db: Database) -> None:
    client, _ = sim
    other = make_tenant(db, "bravo", "BRV")
    make_user(db, other, "bravo.office", ["back_office"], PASSWORD)
    client.cookies.clear()
    login(client, "bravo.office", PASSWORD)
    assert client.get("/sim/meters/SIM1").status_code == 404
    assert client.get("/sim/meters/SIM1/state.json").status_code == 404
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/sim/meters/SIM1/link") as ws,
    ):
        ws.receive_bytes()
    assert closed.value.code == 4404


def test_a_websocket_from_another_site_is_refused(sim: tuple[TestClient, object]) -> None:
    client, _ = sim
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/sim/meters/SIM1/link", headers={"origin": "https://evil.example"}) as ws,
    ):
        ws.receive_bytes()
    assert closed.value.code == 4403


def test_the_household_cooks_and_the_meter_draws_credit_as_time_passes(
    sim: tuple[TestClient, object],
    db: Database,
    tmp_path: Path,
) -> None:
    client, _ = sim
    credit = issue_demo_credit(db, serial="SIM1", amount_text="500")
    csrf = _csrf(client)
    client.post("/sim/meters/SIM1/token", data={"token": credit.token, "csrf_token": csrf})
    client.post("/sim/meters/SIM1/button", data={"csrf_token": csrf})
    hub: SimulatorHub = client.app.state.simulator  # type: ignore[attr-defined]
    later = datetime.now(UTC) + timedelta(days=2)
    hub._now = lambda: later
    state = client.get("/sim/meters/SIM1/state.json").json()
    used = state["cumulative_litres"]
    assert 300 <= used <= 4000, "two days of a household's cooking"
    assert state["credit"] == 50000 - used * 5000 // 1000  # ₹50/SCM, whole paise, nothing lost


def test_a_meter_keeps_its_state_across_a_restart(sim: tuple[TestClient, object], db: Database) -> None:
    client, _ = sim
    credit = issue_demo_credit(db, serial="SIM1", amount_text="75")
    client.post("/sim/meters/SIM1/token", data={"token": credit.token, "csrf_token": _csrf(client)})
    hub: SimulatorHub = client.app.state.simulator  # type: ignore[attr-defined]
    restarted = SimulatorHub(hub.state_dir, master_key=hub.master_key)
    with db.system(read_only=True) as uow:
        meter = get_meter_any_tenant(uow.session, "SIM1")
    runtime = restarted.get(f"{meter.tenant_id}:SIM1")
    assert runtime is not None
    assert runtime.meter.credit == 7500


def test_a_replacement_from_the_back_office_carries_the_simulated_meters_credit(
    sim: tuple[TestClient, object],
    db: Database,
) -> None:
    client, tenant = sim
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        spare = do_register_meter(
            uow.session,
            serial="SIM2",
            sts_meter_number="600727000000000017",
            model_code="G1.6",
            vending_key_id="test",
            simulated=True,
        )
        do_meter_transition(uow.session, spare, "allocate", permissions=frozenset({"meter.manage"}))
        uow.commit()
    make_user(db, tenant, "alpha.tech", ["technician"], PASSWORD)  # type: ignore[arg-type]
    credit = issue_demo_credit(db, serial="SIM1", amount_text="80")
    client.post("/sim/meters/SIM1/token", data={"token": credit.token, "csrf_token": _csrf(client)})
    signed = client.get("/sim/meters/SIM1/signed-status").json()["frame_base64"]
    client.cookies.clear()
    login(client, "alpha.tech", PASSWORD)
    page = client.post(
        "/ops/meters/SIM1/replace",
        data={
            "csrf_token": csrf_from(client.get("/ops/meters/SIM1").text),
            "new_serial": "SIM2",
            "signed_reading": signed,
            "reason": "display cracked",
        },
    )
    assert page.status_code == 200, page.text
    assert "Type this token on meter SIM2" in page.text
    token = page.text.split('data-testid="transfer-token">')[1].split("<")[0]
    client.cookies.clear()
    login(client, "alpha.office", PASSWORD)
    client.post("/sim/meters/SIM2/token", data={"token": token, "csrf_token": _csrf(client, "SIM2")})
    state = client.get("/sim/meters/SIM2/state.json").json()
    assert state["credit"] == 8000
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:  # type: ignore[attr-defined]
        assert get_meter_any_tenant(uow.session, "SIM1").state == "replaced"


def test_a_technician_cannot_replace_with_an_edited_reading(
    sim: tuple[TestClient, object], db: Database
) -> None:
    client, tenant = sim
    make_user(db, tenant, "alpha.tech", ["technician"], PASSWORD)  # type: ignore[arg-type]
    signed = client.get("/sim/meters/SIM1/signed-status").json()["frame_base64"]
    forged = base64.b64encode(
        bytes([b ^ (1 if i == 12 else 0) for i, b in enumerate(base64.b64decode(signed))])
    )
    client.cookies.clear()
    login(client, "alpha.tech", PASSWORD)
    page = client.post(
        "/ops/meters/SIM1/replace",
        data={
            "csrf_token": csrf_from(client.get("/ops/meters/SIM1").text),
            "new_serial": "SIM1",
            "signed_reading": forged.decode(),
            "reason": "x",
        },
    )
    assert page.status_code == 422
    assert "not a status signed by meter SIM1" in page.text
