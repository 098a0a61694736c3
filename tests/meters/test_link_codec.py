"""The meter-link codec: frames, every message's round trip, strict decoding, BLE fragmentation."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citygas.meters.link import (
    MAX_PAYLOAD,
    ButtonResponse,
    ClockSetResponse,
    EnterToken,
    ErrorCode,
    ErrorResponse,
    EventsResponse,
    FrameCrcError,
    FrameLengthError,
    IdentityResponse,
    MessageType,
    ParametersResponse,
    ParametersSetResponse,
    PayloadError,
    PressButton,
    ReadEvents,
    ReadIdentity,
    ReadParameters,
    ReadRegisters,
    ReadSnapshots,
    ReadStatus,
    Reassembler,
    RegistersResponse,
    Request,
    Response,
    SetClock,
    SetParameters,
    SnapshotKind,
    SnapshotsResponse,
    StatusResponse,
    TokenResponse,
    UnknownMessageTypeError,
    UnsupportedVersionError,
    crc16_ccitt_false,
    decode_frame,
    decode_request,
    decode_response,
    encode_frame,
    encode_request,
    encode_response,
    fragment,
)
from citygas.meters.link.messages import ALARM_BITS, EVENT_CODES, MODE_CODES, OUTCOME_CODES, VALVE_CODES
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

KEY = bytes(32)
AT = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
STATUS = MeterStatus(
    at=AT,
    mode=MeterMode.CURRENCY,
    credit=50_000,
    emergency_credit_available=True,
    emergency_credit_in_use=0,
    valve=ValveState.OPEN,
    alarms=frozenset({Alarm.LOW_CREDIT, Alarm.LOW_BATTERY}),
    tariff_paise_per_scm=4_950,
)
PARAMETERS = MeterParameters(
    low_credit_threshold=5_000,
    emergency_credit=10_000,
    friendly_hours=(22, 6),
    friendly_holidays=(date(2026, 1, 26),),
)

REQUESTS: list[Request] = [
    ReadIdentity(),
    ReadStatus(),
    ReadRegisters(),
    ReadSnapshots(SnapshotKind.MONTHLY, 0, 24),
    ReadSnapshots(SnapshotKind.DAILY, 60, 30),
    ReadEvents(after_seq=1_000_000, limit=32),
    ReadParameters(),
    EnterToken("12345678901234567890"),
    PressButton(),
    SetParameters(counter=3, parameters=PARAMETERS, mac=bytes(range(16))),
    SetParameters(counter=4, parameters=MeterParameters(0, 0, friendly_hours=None), mac=bytes(16)),
    SetClock(counter=5, at=AT, mac=bytes(range(16, 32))),
]
RESPONSES: list[Response] = [
    IdentityResponse(
        MeterIdentity(
            "SER-1", "600727000012345673", "G1.6", 47, "1.0", MeterMode.VOLUME, "123457", 2, 1, 1993
        )
    ),
    StatusResponse(STATUS),
    RegistersResponse(AT, Registers(2**40, 2**33, 7)),
    SnapshotsResponse(AT, SnapshotKind.MONTHLY, 24, 0, (Snapshot(date(2026, 4, 30), 10, 20),)),
    SnapshotsResponse(AT, SnapshotKind.DAILY, 0, 0, ()),
    EventsResponse(AT, False, (MeterEvent(1, AT, EventCode.CLOCK_SET, "set by platform"),)),
    ParametersResponse(AT, 12, PARAMETERS),
    TokenResponse(AcceptOutcome.KEY_CHANGED),
    ButtonResponse(ValveState.ARMED),
    ParametersSetResponse(12),
    ClockSetResponse(13),
    ErrorResponse(ErrorCode.BAD_SIGNATURE, "no"),
]


def test_the_crc_is_ccitt_false_with_its_published_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


def test_a_frame_is_version_type_seq_length_payload_crc() -> None:
    frame = encode_frame(0x02, 0x1234, b"\xab")
    assert frame[:7] == bytes.fromhex("010212340001ab")
    assert int.from_bytes(frame[7:], "big") == crc16_ccitt_false(frame[:7])


@pytest.mark.parametrize("request_message", REQUESTS, ids=lambda m: type(m).__name__)
def test_every_request_round_trips_with_its_sequence_number(request_message: Request) -> None:
    decoded = decode_request(encode_request(request_message, 777))
    assert (decoded.seq, decoded.message) == (777, request_message)


@pytest.mark.parametrize("response", RESPONSES, ids=lambda m: type(m).__name__)
def test_every_response_round_trips_with_its_sequence_number(response: Response) -> None:
    decoded = decode_response(encode_response(response, 65535, reading_key=KEY))
    assert (decoded.seq, decoded.message) == (65535, response)
    assert (decoded.mac is not None) == response.SIGNED


def test_every_message_type_has_a_request_or_response_class_in_the_tests() -> None:
    covered = {m.TYPE for m in REQUESTS} | {m.TYPE for m in RESPONSES}
    assert covered == set(MessageType)


def test_every_vocabulary_value_has_exactly_one_wire_code() -> None:
    for table, enum in ((MODE_CODES, MeterMode), (VALVE_CODES, ValveState), (EVENT_CODES, EventCode)):
        assert set(table) == set(enum)
        assert len(set(table.values())) == len(table)
    assert set(ALARM_BITS) == set(Alarm)
    assert sorted(ALARM_BITS.values()) == list(range(len(Alarm)))
    assert set(OUTCOME_CODES) == set(AcceptOutcome)
    assert all((code < 0x10) == outcome.accepted for outcome, code in OUTCOME_CODES.items())


# The fields each shared type has on the wire. A field added to citygas.meters.types fails this test
# until the codecs (Python and meterlink.js) carry it too, instead of being dropped silently.
WIRE_FIELDS = {
    MeterIdentity: "serial sts_meter_number model manufacturer_code firmware mode sgc krn ti base_date",
    MeterStatus: "at mode credit emergency_credit_available emergency_credit_in_use valve alarms "
    "tariff_paise_per_scm friendly_debt",
    Registers: "cumulative_litres cumulative_credit_loaded tokens_accepted",
    Snapshot: "period_end cumulative_litres credit",
    MeterEvent: "seq at code detail",
    MeterParameters: "low_credit_threshold emergency_credit friendly_hours friendly_holidays",
}


@pytest.mark.parametrize("shared_type", list(WIRE_FIELDS), ids=lambda t: t.__name__)
def test_the_wire_carries_every_field_of_the_shared_vocabulary(shared_type: type) -> None:
    assert [f.name for f in dataclasses.fields(shared_type)] == WIRE_FIELDS[shared_type].split()


def test_times_lose_their_fraction_of_a_second_and_come_back_in_utc() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    sent = RegistersResponse(datetime(2026, 5, 1, 16, 0, 0, 999_999, tzinfo=ist), Registers(1, 2, 3))
    decoded = decode_response(encode_response(sent, 1, reading_key=KEY)).message
    assert isinstance(decoded, RegistersResponse)
    assert decoded.at == datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    assert decoded.at.tzinfo is UTC


def test_a_naive_time_is_refused_when_encoding() -> None:
    with pytest.raises(PayloadError, match="aware"):
        encode_response(RegistersResponse(datetime(2026, 5, 1), Registers(1, 2, 3)), 1, reading_key=KEY)  # noqa: DTZ001


def test_a_value_too_large_for_its_field_is_refused_when_encoding() -> None:
    with pytest.raises(PayloadError, match="credit = 4294967296 does not fit an unsigned 32-bit field"):
        encode_response(
            StatusResponse(STATUS.__class__(**{**STATUS.__dict__, "credit": 2**32})), 1, reading_key=KEY
        )


def test_a_token_must_be_twenty_digits() -> None:
    with pytest.raises(PayloadError, match="exactly 20 digits"):
        encode_request(EnterToken("1234"), 1)


def test_a_long_event_detail_is_cut_at_a_character_boundary() -> None:
    event = MeterEvent(1, AT, EventCode.TOKEN_REJECTED, "₹" * 100)  # 300 bytes of UTF-8
    decoded = decode_response(
        encode_response(EventsResponse(AT, False, (event,)), 1, reading_key=KEY)
    ).message
    assert isinstance(decoded, EventsResponse)
    assert decoded.events[0].detail == "₹" * 85


def test_a_signed_response_cannot_be_encoded_without_the_reading_key() -> None:
    with pytest.raises(ValueError, match="pass the meter's reading key"):
        encode_response(StatusResponse(STATUS), 1)


def test_a_damaged_frame_is_a_crc_error() -> None:
    frame = bytearray(encode_request(ReadEvents(5, 10), 9))
    frame[7] ^= 0x40
    with pytest.raises(FrameCrcError, match="frame CRC is 0x"):
        decode_request(bytes(frame))


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "at least 8 bytes, got 0"),
        (bytes.fromhex("01020001"), "at least 8 bytes, got 4"),
        (encode_request(ReadEvents(1, 2), 1)[:-1], "should be 13 bytes; got 12"),
        (encode_request(ReadStatus(), 1) + b"\0", "should be 8 bytes; got 9"),
        (bytes.fromhex("0102000110010000"), "length field 4097 exceeds the maximum payload of 4096"),
    ],
)
def test_a_frame_of_the_wrong_length_is_a_length_error(frame: bytes, message: str) -> None:
    with pytest.raises(FrameLengthError, match=message):
        decode_frame(frame)


def test_another_protocol_version_is_unsupported() -> None:
    with pytest.raises(UnsupportedVersionError, match="version 2 is not supported") as caught:
        decode_request(encode_frame(0x02, 1, b"", version=2))
    assert caught.value.version == 2


def test_an_undefined_type_is_unknown() -> None:
    with pytest.raises(UnknownMessageTypeError, match="unknown meter-link message type 0x42"):
        decode_request(encode_frame(0x42, 1, b""))


def test_a_response_is_not_accepted_as_a_request_nor_the_reverse() -> None:
    with pytest.raises(UnknownMessageTypeError, match="0x82 is not a request"):
        decode_request(encode_response(StatusResponse(STATUS), 1, reading_key=KEY))
    with pytest.raises(UnknownMessageTypeError, match="0x02 is not a response"):
        decode_response(encode_request(ReadStatus(), 1))


@pytest.mark.parametrize(
    ("message_type", "payload", "message"),
    [
        (MessageType.READ_STATUS, b"\0", "1 unexpected trailing bytes"),
        (MessageType.READ_EVENTS, b"\0\0\0", "ends early"),
        (MessageType.READ_SNAPSHOTS, b"\x07\0\0\x01", "unknown snapshot kind code 0x07"),
        (MessageType.ENTER_TOKEN, b"1234567890123456789a", "20 ASCII digits"),
        (MessageType.BUTTON_PRESSED, b"\x09", "unknown valve code 0x09"),
        (MessageType.TOKEN_RESULT, b"\x05", "unknown token outcome code 0x05"),
        (MessageType.ERROR, b"\x01\x02\xff\xfe", "not valid UTF-8"),
    ],
)
def test_a_malformed_payload_is_a_payload_error(
    message_type: MessageType, payload: bytes, message: str
) -> None:
    decode = decode_request if message_type.is_request else decode_response
    with pytest.raises(PayloadError, match=message):
        decode(encode_frame(message_type, 1, payload))


def test_unknown_alarm_bits_are_refused() -> None:
    frame = bytearray(encode_response(StatusResponse(STATUS), 1, reading_key=KEY))
    alarms_at = 6 + 4 + 1 + 4 + 1 + 4 + 4 + 1
    frame[alarms_at] |= 0x80
    body = bytes(frame[:-2])
    with pytest.raises(PayloadError, match="unknown alarm bits 0x8000"):
        decode_response(body + crc16_ccitt_false(body).to_bytes(2, "big"))


def test_a_frame_cut_into_ble_chunks_reassembles() -> None:
    frame = encode_response(ParametersResponse(AT, 1, PARAMETERS), 3, reading_key=KEY)
    chunks = fragment(frame)
    assert [len(c) for c in chunks[:-1]] == [20] * (len(chunks) - 1)
    assert b"".join(chunks) == frame
    reassembler = Reassembler()
    got = [f for chunk in chunks for f in reassembler.feed(chunk)]
    assert got == [frame]
    assert reassembler.pending == 0


def test_reassembly_splits_back_to_back_frames_arriving_in_odd_chunks() -> None:
    frames = [
        encode_request(ReadStatus(), 1),
        encode_request(EnterToken("0" * 20), 2),
        encode_request(ReadIdentity(), 3),
    ]
    stream = b"".join(frames)
    reassembler = Reassembler()
    got = [f for chunk in fragment(stream, 7) for f in reassembler.feed(chunk)]
    assert got == frames


def test_reassembly_resynchronises_after_a_garbage_header() -> None:
    reassembler = Reassembler()
    with pytest.raises(UnsupportedVersionError):
        reassembler.feed(b"\x7f\x01\x00\x01\x00\x00")
    assert reassembler.pending == 0
    assert reassembler.feed(encode_request(ReadStatus(), 4)) == [encode_request(ReadStatus(), 4)]


def test_a_frame_at_the_maximum_payload_fits_and_one_byte_more_does_not() -> None:
    assert len(decode_frame(encode_frame(0x02, 1, bytes(MAX_PAYLOAD))).payload) == MAX_PAYLOAD
    with pytest.raises(FrameLengthError):
        encode_frame(0x02, 1, bytes(MAX_PAYLOAD + 1))


@given(
    credit=st.integers(0, 2**32 - 1),
    in_use=st.integers(0, 2**32 - 1),
    alarms=st.frozensets(st.sampled_from(list(Alarm))),
    valve=st.sampled_from(list(ValveState)),
    mode=st.sampled_from(list(MeterMode)),
    seconds=st.integers(0, 2**32 - 1),
    seq=st.integers(0, 0xFFFF),
)
def test_any_status_round_trips(
    credit: int,
    in_use: int,
    alarms: frozenset[Alarm],
    valve: ValveState,
    mode: MeterMode,
    seconds: int,
    seq: int,
) -> None:
    status = MeterStatus(
        at=datetime.fromtimestamp(seconds, UTC),
        mode=mode,
        credit=credit,
        emergency_credit_available=credit % 2 == 0,
        emergency_credit_in_use=in_use,
        valve=valve,
        alarms=alarms,
        tariff_paise_per_scm=credit // 3,
        friendly_debt=in_use // 5,
    )
    decoded = decode_response(encode_response(StatusResponse(status), seq, reading_key=KEY))
    assert (decoded.seq, decoded.message) == (seq, StatusResponse(status))


@given(
    threshold=st.integers(0, 2**32 - 1),
    hours=st.none() | st.tuples(st.integers(0, 23), st.integers(0, 23)),
    holidays=st.lists(st.dates(date(1970, 1, 1), date(2149, 6, 1)), max_size=20).map(tuple),
)
def test_any_parameters_round_trip(
    threshold: int, hours: tuple[int, int] | None, holidays: tuple[date, ...]
) -> None:
    parameters = MeterParameters(threshold, threshold // 2, friendly_hours=hours, friendly_holidays=holidays)
    message = SetParameters(counter=threshold, parameters=parameters, mac=bytes(16))
    assert decode_request(encode_request(message, 1)).message == message
