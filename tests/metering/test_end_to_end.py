"""The whole story without a browser: a household tops up, its phone sends the tokens to the simulated meter
over the meter link (the WebSocket the app's screen uses), reads back the signed readings and uploads them;
the platform confirms the tokens and its estimate is the meter's own credit."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient
from tests.metering.conftest import Cgd, get_meter, log_in_household, vend

from citygas.metering.demo import read_signed_frames
from citygas.metering.service import estimate_balance, pending_tokens
from citygas.meters.link import EnterToken, StatusResponse, TokenResponse, decode_response, encode_request
from citygas.platform.uow import Database
from citygas.sts import AcceptOutcome


class WebSocketMeter:
    """The phone's side of the link over the test client's WebSocket: one frame out, one frame back."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seq = 100

    def handle(self, frame: bytes) -> bytes:
        self.ws.send_bytes(frame)
        answer: bytes = self.ws.receive_bytes()
        return answer

    def enter_token(self, token: str) -> AcceptOutcome:
        self.seq += 1
        response = decode_response(self.handle(encode_request(EnterToken(token), self.seq))).message
        assert isinstance(response, TokenResponse)
        return response.outcome


def test_a_top_up_travels_to_the_meter_and_the_signed_readings_confirm_it(
    client: TestClient, db: Database, alpha: Cgd
) -> None:
    outcome = vend(db, alpha, "ALP-C-00000001", 50_000, key="pay-e2e")
    csrf = log_in_household(client, db, alpha, "ALP-C-00000001")
    pending = [t["token"] for t in outcome.vend.tokens]

    with client.websocket_connect("/sim/meters/ALPM0000001/link") as ws:
        meter_link = WebSocketMeter(ws)
        outcomes = [meter_link.enter_token(token) for token in pending]
        replayed = meter_link.enter_token(pending[-1])
        frames = read_signed_frames(meter_link)  # type: ignore[arg-type]
    response = client.post(
        "/app/meter/ALPM0000001/readings",
        json={"frames": [base64.b64encode(f).decode() for f in frames]},
        headers={"X-CSRF-Token": csrf},
    )

    status = decode_response(frames[0]).message
    assert isinstance(status, StatusResponse)
    assert outcomes == [AcceptOutcome.MANAGEMENT_APPLIED, AcceptOutcome.CREDIT_ADDED]
    assert replayed is AcceptOutcome.USED_ERROR
    assert response.status_code == 200, response.text
    body = response.json()
    assert [t["token"] for t in body["confirmed"]] == pending
    assert status.status.credit == outcome.vend.gas_credit_paise  # nothing cooked yet: all of it
    assert body["meter_status"]["credit"] == status.status.credit
    assert body["estimate"]["synced_credit_paise"] == status.status.credit
    assert body["estimate"]["pending"] == []
    assert client.get("/sim/meters/ALPM0000001/state.json").json()["credit"] == status.status.credit
    meter = get_meter(db, alpha, "ALPM0000001")
    with db.unit_of_work(tenant=alpha.tenant.id, read_only=True) as uow:
        estimate = estimate_balance(uow.session, meter, now=status.status.at)
        assert pending_tokens(uow.session, meter) == []
    assert estimate.estimated_paise == status.status.credit
    assert estimate.valve == "armed"  # the credit is back; the household presses the button at the meter
