"""The meter screen and the upload endpoint: what a household sees, what it may reach, and the problems it
gets back (problem+json) when an upload cannot be taken."""

from __future__ import annotations

import base64
import re

from fastapi.testclient import TestClient
from httpx import Response
from tests.conftest import login, make_user
from tests.metering.conftest import Cgd, frames_of, live_meter, log_in_household, vend
from tests.metering.test_upload import counts, with_crc
from tests.web.db_snapshot import differences, snapshot

from citygas.platform.uow import Database

PROBLEM = "application/problem+json"


def b64(frames: list[bytes]) -> list[str]:
    return [base64.b64encode(f).decode() for f in frames]


def post_frames(client: TestClient, serial: str, csrf: str, frames: list[str]) -> Response:
    response: Response = client.post(
        f"/app/meter/{serial}/readings", json={"frames": frames}, headers={"X-CSRF-Token": csrf}
    )
    return response


def test_a_household_without_a_meter_is_told_so(client: TestClient, db: Database, alpha: Cgd) -> None:
    log_in_household(client, db, alpha, "ALP-C-00000004")

    page = client.get("/app/meter")

    assert page.status_code == 200
    assert 'data-testid="no-meter"' in page.text
    assert "No meter is installed on connection ALP-C-00000004 yet." in page.text
    assert 'data-testid="sync-meter"' not in page.text


def test_a_household_with_one_meter_sees_its_pending_tokens_grouped_for_the_keypad(
    client: TestClient, db: Database, alpha: Cgd
) -> None:
    outcome = vend(db, alpha, "ALP-C-00000001", 50_000, key="pay-1")
    log_in_household(client, db, alpha, "ALP-C-00000001")

    page = client.get("/app/meter")

    assert page.status_code == 200
    assert '<a href="/app/meter" aria-current="page">' in page.text  # the Meter tab is lit
    assert 'data-testid="choose-connection"' not in page.text
    assert 'data-serial="ALPM0000001"' in page.text
    assert 'data-simulated="true"' in page.text
    assert 'data-link-path="/sim/meters/ALPM0000001/link"' in page.text
    rows = re.findall(r'data-testid="token-row" data-token="(\d{20})"', page.text)
    assert rows == [t["token"] for t in outcome.vend.tokens]  # tariff first, then credit
    groups = re.findall(r'<span data-testid="keypad-group">(\d{4})</span>', page.text)
    assert "".join(groups) == "".join(rows)
    assert page.text.count('data-testid="copy-token"') == 2
    assert page.text.count('data-testid="token-outcome"') == 2
    assert 'data-testid="send-to-meter"' in page.text
    assert 'data-testid="keypad-help"' in page.text
    assert 'data-testid="meter-credit"' in page.text
    assert "The meter has not been read yet." in page.text


def test_a_household_with_two_connections_chooses_between_them(
    client: TestClient, db: Database, alpha: Cgd
) -> None:
    log_in_household(client, db, alpha, "ALP-C-00000002")

    first = client.get("/app/meter")
    second = client.get("/app/meter?c=ALP-C-00000003")
    foreign = client.get("/app/meter?c=ALP-C-00000001")  # Asha's, not this household's

    assert first.text.count('data-testid="choose-connection"') == 2
    assert 'data-serial="ALPM0000002"' in first.text
    assert 'data-serial="ALPM0000003"' in second.text
    assert 'data-serial="ALPM0000002"' in foreign.text  # falls back to its own first meter
    assert "ALPM0000001" not in foreign.text
    assert 'data-testid="no-pending"' in first.text


def test_the_screen_speaks_hindi(client: TestClient, db: Database, alpha: Cgd) -> None:
    vend(db, alpha, "ALP-C-00000001", 50_000, key="pay-1")
    log_in_household(client, db, alpha, "ALP-C-00000001")

    page = client.get("/app/meter?lang=hi")

    assert "आपका मीटर" in page.text
    assert "मीटर से मिलान करें" in page.text
    assert "Sync meter" not in page.text


def test_staff_do_not_get_the_household_screen(client: TestClient, db: Database, alpha: Cgd) -> None:
    make_user(db, alpha.tenant, "alpha.office", ["back_office"], "a-long-password-1")
    login(client, "alpha.office", "a-long-password-1")

    assert client.get("/app/meter").status_code == 403


def test_an_upload_returns_the_new_estimate_and_the_confirmed_tokens(
    client: TestClient, db: Database, alpha: Cgd
) -> None:
    runtime = live_meter(db, alpha, "ALPM0000001")
    outcome = vend(db, alpha, "ALP-C-00000001", 50_000, key="pay-1")
    for token in outcome.vend.tokens:
        runtime.meter.enter_token(token["token"])
    csrf = log_in_household(client, db, alpha, "ALP-C-00000001")

    response = post_frames(client, "ALPM0000001", csrf, b64(frames_of(alpha, runtime)))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stored"] is True
    assert [t["tid"] for t in body["confirmed"]] == [t["tid"] for t in outcome.vend.tokens]
    assert body["meter_status"]["credit"] == runtime.meter.credit
    assert body["estimate"]["synced_credit_paise"] == runtime.meter.credit
    assert body["estimate"]["pending"] == []
    page = client.get("/app/meter")
    assert 'data-testid="token-row"' not in page.text
    assert f"Meter credit ₹{runtime.meter.credit // 100:,}.{runtime.meter.credit % 100:02d}" in page.text


def test_upload_problems_are_problem_json_and_change_nothing(
    client: TestClient, db: Database, alpha: Cgd
) -> None:
    frames = frames_of(alpha, live_meter(db, alpha, "ALPM0000001"))
    forged = bytearray(frames[0])
    forged[13] ^= 0x01
    csrf = log_in_household(client, db, alpha, "ALP-C-00000001")
    before = snapshot(db)

    cases = {
        "forged": post_frames(client, "ALPM0000001", csrf, b64([frames[1], with_crc(forged)])),
        "not base64": post_frames(client, "ALPM0000001", csrf, ["not base64!"]),
        "no frames": post_frames(client, "ALPM0000001", csrf, []),
        "not json": client.post(
            "/app/meter/ALPM0000001/readings",
            content=b"{",
            headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
        ),
        "a form": client.post(
            "/app/meter/ALPM0000001/readings", data={"frames": "x"}, headers={"X-CSRF-Token": csrf}
        ),
        "neighbour's meter": post_frames(client, "ALPM0000002", csrf, b64(frames)),
        "no such meter": post_frames(client, "ALPM9999999", csrf, b64(frames)),
        "too many": post_frames(client, "ALPM0000001", csrf, b64(frames) * 14),
        "too large": post_frames(client, "ALPM0000001", csrf, ["A" * 1_000_000]),
    }

    found = {name: (r.status_code, r.headers["content-type"], r.json()["code"]) for name, r in cases.items()}
    assert found == {
        "forged": (422, PROBLEM, "reading_signature_invalid"),
        "not base64": (422, PROBLEM, "validation_error"),
        "no frames": (422, PROBLEM, "validation_error"),
        "not json": (422, PROBLEM, "validation_error"),
        "a form": (415, PROBLEM, "unsupported_media_type"),
        "neighbour's meter": (404, PROBLEM, "not_found"),
        "no such meter": (404, PROBLEM, "not_found"),
        "too many": (413, PROBLEM, "too_many_frames"),
        "too large": (413, PROBLEM, "too_large"),
    }
    assert cases["forged"].json()["frame"] == 2
    assert differences(before, snapshot(db)) == {}


def test_an_upload_without_the_csrf_token_is_refused(client: TestClient, db: Database, alpha: Cgd) -> None:
    frames = frames_of(alpha, live_meter(db, alpha, "ALPM0000001"))
    log_in_household(client, db, alpha, "ALP-C-00000001")

    response = client.post("/app/meter/ALPM0000001/readings", json={"frames": b64(frames)})

    assert response.status_code == 403
    assert counts(db, alpha)["meter_upload"] == 0


def test_another_cgds_household_can_neither_upload_to_nor_see_the_meter(
    client: TestClient, db: Database, alpha: Cgd, bravo: Cgd
) -> None:
    vend(db, alpha, "ALP-C-00000001", 50_000, key="pay-1")
    frames = frames_of(alpha, live_meter(db, alpha, "ALPM0000001"))
    csrf = log_in_household(client, db, bravo, "BRV-C-00000001")
    before = snapshot(db)

    upload = post_frames(client, "ALPM0000001", csrf, b64(frames))
    page = client.get("/app/meter?c=ALP-C-00000001")

    assert (upload.status_code, upload.json()["code"]) == (404, "not_found")
    assert upload.json()["detail"] == "no meter ALPM0000001 on your connections"
    assert "ALPM0000001" not in page.text  # (the consumer number is only echoed from the URL it asked for)
    assert 'data-testid="choose-connection"' not in page.text
    assert 'data-serial="BRVM0000001"' in page.text
    assert differences(before, snapshot(db)) == {}


def test_the_link_to_another_households_simulated_meter_stays_closed(
    client: TestClient, db: Database, alpha: Cgd
) -> None:
    """The screen's WebSocket is the simulator's: a household reaches only its own meter there too."""
    from starlette.websockets import WebSocketDisconnect

    log_in_household(client, db, alpha, "ALP-C-00000001")
    try:
        with client.websocket_connect("/sim/meters/ALPM0000002/link") as ws:
            ws.receive_bytes()
        closed = None
    except WebSocketDisconnect as exc:
        closed = exc.code
    assert closed == 4404
