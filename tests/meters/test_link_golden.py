"""Golden frames: fixed inputs, fixed bytes. The same file is checked by the browser module
(tests/browser/test_meterlink_js.py), so the two codecs cannot drift apart.

Regenerate (only when the protocol version changes): .venv/bin/python tests/meters/test_link_golden.py --write
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from citygas.meters.link import (
    ButtonResponse,
    ClockSetResponse,
    EnterToken,
    ErrorCode,
    ErrorResponse,
    EventsResponse,
    FrameCrcError,
    FrameLengthError,
    IdentityResponse,
    ParametersResponse,
    ParametersSetResponse,
    PayloadError,
    PressButton,
    ReadEvents,
    ReadIdentity,
    ReadingSignatureError,
    ReadParameters,
    ReadRegisters,
    ReadSnapshots,
    ReadStatus,
    RegistersResponse,
    Request,
    Response,
    SnapshotKind,
    SnapshotsResponse,
    StatusResponse,
    TokenResponse,
    UnknownMessageTypeError,
    UnsupportedVersionError,
    authorise_clock,
    authorise_parameters,
    crc16_ccitt_false,
    decode_request,
    decode_response,
    derive_meter_parameter_key,
    derive_meter_reading_key,
    encode_request,
    encode_response,
    verify_reading,
)
from citygas.meters.link.jsonform import message_to_json
from citygas.meters.types import (
    Alarm,
    EventCode,
    MeterEvent,
    MeterIdentity,
    MeterMode,
    MeterParameters,
    MeterStatus,
    Registers,
    Snapshot,
    ValveState,
)
from citygas.sts import AcceptOutcome

GOLDEN = Path(__file__).with_name("golden_frames.json")
ROOT_KEY = bytes(range(32))  # a test key: never a real tenant's
SERIAL = "G16-2405-000123"
NOW = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)

_ERRORS = {
    "crc": FrameCrcError,
    "length": FrameLengthError,
    "version": UnsupportedVersionError,
    "type": UnknownMessageTypeError,
    "payload": PayloadError,
}


def _crc_fixed(frame: bytes) -> bytes:
    """Recompute the CRC after tampering, as a forger would."""
    body = frame[:-2]
    return body + crc16_ccitt_false(body).to_bytes(2, "big")


def build_golden() -> dict[str, Any]:
    reading_key = derive_meter_reading_key(ROOT_KEY, SERIAL)
    parameter_key = derive_meter_parameter_key(ROOT_KEY, SERIAL)
    new_parameters = MeterParameters(
        low_credit_threshold=5_000,
        emergency_credit=10_000,
        friendly_hours=(22, 6),
        friendly_holidays=(date(2026, 8, 15), date(2026, 10, 20)),
    )
    requests: list[tuple[str, int, Request]] = [
        ("read_identity", 1, ReadIdentity()),
        ("read_status", 2, ReadStatus()),
        ("read_registers", 3, ReadRegisters()),
        ("read_monthly_snapshots", 4, ReadSnapshots(SnapshotKind.MONTHLY, 0, 32)),
        ("read_daily_snapshots_page", 5, ReadSnapshots(SnapshotKind.DAILY, 2, 2)),
        ("read_events", 6, ReadEvents(after_seq=40, limit=3)),
        ("read_parameters", 7, ReadParameters()),
        ("enter_token", 8, EnterToken("56483047102938475610")),
        ("press_button", 9, PressButton()),
        (
            "set_parameters",
            10,
            authorise_parameters(new_parameters, serial=SERIAL, counter=8, parameter_key=parameter_key),
        ),
        ("set_clock", 11, authorise_clock(NOW, serial=SERIAL, counter=9, parameter_key=parameter_key)),
        ("read_status_seq_wraps", 65535, ReadStatus()),
    ]
    responses: list[tuple[str, int, Response]] = [
        (
            "identity",
            1,
            IdentityResponse(
                MeterIdentity(
                    serial=SERIAL,
                    sts_meter_number="600727000012345673",
                    model="G1.6",
                    manufacturer_code=47,
                    firmware="1.4.2",
                    mode=MeterMode.CURRENCY,
                    sgc="123457",
                    krn=1,
                    ti=1,
                    base_date=2014,
                )
            ),
        ),
        (
            "status_open",
            2,
            StatusResponse(
                MeterStatus(
                    at=NOW,
                    mode=MeterMode.CURRENCY,
                    credit=123_456,
                    emergency_credit_available=True,
                    emergency_credit_in_use=0,
                    valve=ValveState.OPEN,
                    alarms=frozenset(),
                    tariff_paise_per_scm=4_950,
                )
            ),
        ),
        (
            "status_armed_with_alarms",
            2,
            StatusResponse(
                MeterStatus(
                    at=NOW,
                    mode=MeterMode.VOLUME,
                    credit=0,
                    emergency_credit_available=False,
                    emergency_credit_in_use=2_500,
                    valve=ValveState.ARMED,
                    alarms=frozenset({Alarm.CREDIT_EXHAUSTED, Alarm.MAGNET_TAMPER, Alarm.KEYPAD_LOCKED}),
                    tariff_paise_per_scm=0,
                    friendly_debt=300,
                )
            ),
        ),
        ("registers", 3, RegistersResponse(NOW, Registers(1_234_567, 987_654, 12))),
        (
            "monthly_snapshots",
            4,
            SnapshotsResponse(
                NOW,
                SnapshotKind.MONTHLY,
                3,
                0,
                (
                    Snapshot(date(2026, 2, 28), 1_180_000, 210_000),
                    Snapshot(date(2026, 3, 31), 1_205_500, 172_300),
                    Snapshot(date(2026, 4, 30), 1_230_125, 128_900),
                ),
            ),
        ),
        (
            "daily_snapshots_page",
            5,
            SnapshotsResponse(
                NOW,
                SnapshotKind.DAILY,
                5,
                2,
                (
                    Snapshot(date(2026, 4, 28), 1_228_400, 131_200),
                    Snapshot(date(2026, 4, 29), 1_229_300, 130_000),
                ),
            ),
        ),
        (
            "events",
            6,
            EventsResponse(
                NOW,
                True,
                (
                    MeterEvent(
                        41, datetime(2026, 4, 30, 7, 15, tzinfo=UTC), EventCode.TOKEN_ACCEPTED, "₹500.00"
                    ),
                    MeterEvent(42, datetime(2026, 4, 30, 7, 16, 5, tzinfo=UTC), EventCode.VALVE_OPENED),
                    MeterEvent(
                        43, datetime(2026, 4, 30, 23, 59, 59, tzinfo=UTC), EventCode.MAGNET_TAMPER, "चुंबक"
                    ),
                ),
            ),
        ),
        (
            "parameters",
            7,
            ParametersResponse(
                NOW, 7, MeterParameters(low_credit_threshold=2_000, emergency_credit=0, friendly_hours=None)
            ),
        ),
        ("token_credit_added", 8, TokenResponse(AcceptOutcome.CREDIT_ADDED)),
        ("token_used", 8, TokenResponse(AcceptOutcome.USED_ERROR)),
        ("button_pressed", 9, ButtonResponse(ValveState.OPEN)),
        ("parameters_set", 10, ParametersSetResponse(8)),
        ("clock_set", 11, ClockSetResponse(9)),
        ("error_replayed_counter", 10, ErrorResponse(ErrorCode.REPLAYED_COUNTER, "counter 8 is not above 8")),
    ]
    frames: list[dict[str, Any]] = []
    for name, seq, request in requests:
        frame = encode_request(request, seq)
        frames.append(
            {
                "name": name,
                "direction": "request",
                "seq": seq,
                "hex": frame.hex(),
                "message": message_to_json(request),
            }
        )
    for name, seq, response in responses:
        frame = encode_response(response, seq, reading_key=reading_key)
        decoded = decode_response(frame)
        frames.append(
            {
                "name": name,
                "direction": "response",
                "seq": seq,
                "hex": frame.hex(),
                "message": message_to_json(response),
                "signed": response.SIGNED,
                "mac": decoded.mac.hex() if decoded.mac is not None else None,
            }
        )
    by_name = {f["name"]: bytes.fromhex(f["hex"]) for f in frames}
    status = by_name["status_open"]
    invalid = [
        {
            "name": "bad_crc",
            "direction": "request",
            "hex": (status[:-1] + bytes([status[-1] ^ 1])).hex(),
            "error": "crc",
        },
        {"name": "too_short", "direction": "request", "hex": "0102000000", "error": "length"},
        {"name": "truncated", "direction": "response", "hex": status[:-3].hex(), "error": "length"},
        {
            "name": "version_2",
            "direction": "request",
            "hex": _crc_fixed(b"\x02" + by_name["read_status"][1:]).hex(),
            "error": "version",
        },
        {
            "name": "unknown_type",
            "direction": "request",
            "hex": _crc_fixed(b"\x01\x42" + by_name["read_status"][2:]).hex(),
            "error": "type",
        },
        {
            "name": "response_as_request",
            "direction": "request",
            "hex": by_name["clock_set"].hex(),
            "error": "type",
        },
        {
            "name": "token_not_digits",
            "direction": "request",
            "hex": _crc_fixed(by_name["enter_token"][:6] + b"5648304710293847561X" + b"\0\0").hex(),
            "error": "payload",
        },
        {
            "name": "trailing_byte",
            "direction": "request",
            "hex": _crc_fixed(b"\x01\x02\x00\x02\x00\x01\x00\0\0").hex(),
            "error": "payload",
        },
    ]
    # A forged reading: credit raised by one bit, CRC recomputed. It decodes; only the MAC gives it away.
    credit_at = 6 + 4 + 1
    forged = bytearray(status)
    forged[credit_at + 1] ^= 0x01
    forgeries = [{"name": "status_credit_bit_flipped", "hex": _crc_fixed(bytes(forged)).hex()}]
    return {
        "comment": "meter-link v1 golden frames (tests/meters/test_link_golden.py). TEST KEYS ONLY.",
        "protocol_version": 1,
        "root_key_hex": ROOT_KEY.hex(),
        "serial": SERIAL,
        "reading_key_hex": reading_key.hex(),
        "parameter_key_hex": parameter_key.hex(),
        "crc_check": {"input_ascii": "123456789", "crc16_ccitt_false": "29b1"},
        "frames": frames,
        "invalid": invalid,
        "forgeries": forgeries,
    }


def _render(golden: dict[str, Any]) -> str:
    return json.dumps(golden, indent=2, ensure_ascii=False) + "\n"


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return loaded


def test_the_golden_file_is_what_the_fixed_inputs_encode_to() -> None:
    assert GOLDEN.read_text(encoding="utf-8") == _render(build_golden())


def test_the_keys_in_the_golden_file_derive_from_its_root_key(golden: dict[str, Any]) -> None:
    root = bytes.fromhex(golden["root_key_hex"])
    assert derive_meter_reading_key(root, golden["serial"]).hex() == golden["reading_key_hex"]
    assert derive_meter_parameter_key(root, golden["serial"]).hex() == golden["parameter_key_hex"]


def test_every_golden_frame_decodes_to_its_recorded_meaning_and_encodes_back(golden: dict[str, Any]) -> None:
    reading_key = bytes.fromhex(golden["reading_key_hex"])
    for entry in golden["frames"]:
        frame = bytes.fromhex(entry["hex"])
        if entry["direction"] == "request":
            request = decode_request(frame)
            assert (request.seq, message_to_json(request.message)) == (entry["seq"], entry["message"]), entry[
                "name"
            ]
            assert encode_request(request.message, request.seq) == frame, entry["name"]
        else:
            response = decode_response(frame)
            assert (response.seq, message_to_json(response.message)) == (entry["seq"], entry["message"]), (
                entry["name"]
            )
            assert encode_response(response.message, response.seq, reading_key=reading_key) == frame, entry[
                "name"
            ]
            assert (response.mac.hex() if response.mac else None) == entry["mac"], entry["name"]


def test_every_signed_golden_reading_verifies_with_the_meter_key(golden: dict[str, Any]) -> None:
    reading_key = bytes.fromhex(golden["reading_key_hex"])
    signed = [e for e in golden["frames"] if e["direction"] == "response" and e["signed"]]
    assert {e["name"] for e in signed} >= {
        "status_open",
        "registers",
        "monthly_snapshots",
        "events",
        "parameters",
    }
    for entry in signed:
        message = verify_reading(bytes.fromhex(entry["hex"]), reading_key)
        assert message_to_json(message) == entry["message"]


def test_every_invalid_golden_frame_is_rejected_with_its_specific_error(golden: dict[str, Any]) -> None:
    for entry in golden["invalid"]:
        decode = decode_request if entry["direction"] == "request" else decode_response
        with pytest.raises(_ERRORS[entry["error"]]):
            decode(bytes.fromhex(entry["hex"]))


def test_the_golden_forgery_decodes_but_fails_verification(golden: dict[str, Any]) -> None:
    reading_key = bytes.fromhex(golden["reading_key_hex"])
    for entry in golden["forgeries"]:
        frame = bytes.fromhex(entry["hex"])
        decode_response(frame)  # intact as a frame
        with pytest.raises(ReadingSignatureError):
            verify_reading(frame, reading_key)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        GOLDEN.write_text(_render(build_golden()), encoding="utf-8")
        print(f"wrote {GOLDEN}")
    else:
        print(_render(build_golden()), end="")
