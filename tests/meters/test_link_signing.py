"""Meter signatures on readings and platform authorisation of settings: genuine ones pass, forged
ones are refused with a specific error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from citygas.meters.link import (
    AuthorisationError,
    EnterToken,
    MessageType,
    ParametersSetResponse,
    ReadingNotSignedError,
    ReadingSignatureError,
    RegistersResponse,
    ReplayedCounterError,
    StatusResponse,
    authorise_clock,
    authorise_parameters,
    check_authorisation,
    crc16_ccitt_false,
    derive_meter_parameter_key,
    derive_meter_reading_key,
    encode_request,
    encode_response,
    verify_reading,
)
from citygas.meters.link.signing import authorisation_mac
from citygas.meters.types import MeterMode, MeterParameters, MeterStatus, Registers, ValveState

ROOT = bytes(range(100, 132))
SERIAL = "G16-0001"
AT = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
READING = RegistersResponse(
    AT, Registers(cumulative_litres=812_000, cumulative_credit_loaded=400_000, tokens_accepted=4)
)
PARAMETERS = MeterParameters(low_credit_threshold=5_000, emergency_credit=10_000)


def _signed(key: bytes) -> bytes:
    return encode_response(READING, 5, reading_key=key)


def _with_crc(body: bytes) -> bytes:
    return body + crc16_ccitt_false(body).to_bytes(2, "big")


def test_hkdf_derivation_matches_rfc5869_by_hand() -> None:
    import hashlib
    import hmac

    prk = hmac.new(bytes(32), ROOT, hashlib.sha256).digest()  # no salt = 32 zero bytes
    okm = hmac.new(
        prk, b"citygas meter-link v1 reading " + SERIAL.encode() + b"\x01", hashlib.sha256
    ).digest()
    assert derive_meter_reading_key(ROOT, SERIAL) == okm


def test_each_meter_and_each_purpose_gets_its_own_key() -> None:
    keys = {
        derive_meter_reading_key(ROOT, SERIAL),
        derive_meter_reading_key(ROOT, "G16-0002"),
        derive_meter_parameter_key(ROOT, SERIAL),
        derive_meter_parameter_key(ROOT, "G16-0002"),
        derive_meter_reading_key(bytes(32), SERIAL),
    }
    assert len(keys) == 5
    assert all(len(k) == 32 for k in keys)


def test_a_short_root_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes, got 8"):
        derive_meter_reading_key(bytes(8), SERIAL)


def test_a_genuine_reading_verifies_and_decodes() -> None:
    assert (
        verify_reading(
            _signed(derive_meter_reading_key(ROOT, SERIAL)), derive_meter_reading_key(ROOT, SERIAL)
        )
        == READING
    )


# Every 5th bit of the seq, body and MAC (version, type and length bytes are left out: flipping
# them makes a frame that no longer parses as this reading at all).
@pytest.mark.parametrize("bit", [b for b in range(0, (6 + 24 + 16) * 8, 5) if b // 8 not in (0, 1, 4, 5)])
def test_any_flipped_bit_with_the_crc_recomputed_is_a_forgery(bit: int) -> None:
    key = derive_meter_reading_key(ROOT, SERIAL)
    frame = bytearray(_signed(key))
    frame[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ReadingSignatureError, match="REGISTERS reading's signature does not verify"):
        verify_reading(_with_crc(bytes(frame[:-2])), key)


def test_a_flipped_bit_in_the_mac_is_a_forgery() -> None:
    key = derive_meter_reading_key(ROOT, SERIAL)
    frame = bytearray(_signed(key))
    frame[-3] ^= 0x01
    with pytest.raises(ReadingSignatureError):
        verify_reading(_with_crc(bytes(frame[:-2])), key)


def test_a_reading_from_another_meter_does_not_verify_as_this_one() -> None:
    other_meter = _signed(derive_meter_reading_key(ROOT, "G16-0002"))
    with pytest.raises(ReadingSignatureError):
        verify_reading(other_meter, derive_meter_reading_key(ROOT, SERIAL))


def test_a_reading_signed_under_another_tenant_root_does_not_verify() -> None:
    with pytest.raises(ReadingSignatureError):
        verify_reading(
            _signed(derive_meter_reading_key(bytes(32), SERIAL)), derive_meter_reading_key(ROOT, SERIAL)
        )


def test_a_reading_signed_with_the_parameter_key_does_not_verify() -> None:
    with pytest.raises(ReadingSignatureError):
        verify_reading(
            _signed(derive_meter_parameter_key(ROOT, SERIAL)), derive_meter_reading_key(ROOT, SERIAL)
        )


def test_a_response_that_carries_no_reading_cannot_be_verified() -> None:
    frame = encode_response(ParametersSetResponse(3), 1)
    with pytest.raises(ReadingNotSignedError, match="PARAMETERS_SET response carries no signed reading"):
        verify_reading(frame, derive_meter_reading_key(ROOT, SERIAL))


def test_the_mac_covers_the_sequence_number() -> None:
    key = derive_meter_reading_key(ROOT, SERIAL)
    frame = bytearray(_signed(key))
    frame[3] ^= 0x01
    with pytest.raises(ReadingSignatureError):
        verify_reading(_with_crc(bytes(frame[:-2])), key)


def test_an_unsigned_frame_dressed_as_a_reading_is_a_forgery() -> None:
    status = MeterStatus(AT, MeterMode.CURRENCY, 9_999_999, False, 0, ValveState.OPEN, frozenset(), 5_000)
    unsigned = encode_response(StatusResponse(status), 1, reading_key=bytes(32))
    with pytest.raises(ReadingSignatureError):
        verify_reading(unsigned, derive_meter_reading_key(ROOT, SERIAL))


# --- authorisations ---------------------------------------------------------------------------------


def test_an_authorisation_passes_on_the_meter_it_was_made_for() -> None:
    key = derive_meter_parameter_key(ROOT, SERIAL)
    request = authorise_parameters(PARAMETERS, serial=SERIAL, counter=8, parameter_key=key)
    check_authorisation(request, serial=SERIAL, parameter_key=key, last_counter=7)


def test_the_authorisation_mac_covers_type_serial_counter_and_parameters() -> None:
    key = derive_meter_parameter_key(ROOT, SERIAL)
    request = authorise_parameters(PARAMETERS, serial=SERIAL, counter=8, parameter_key=key)
    body = encode_request(request, 1)[6:-2][:-16]
    assert request.mac == authorisation_mac(key, MessageType.SET_PARAMETERS, SERIAL, body)
    assert body[:4] == (8).to_bytes(4, "big")


def test_a_replayed_counter_is_refused() -> None:
    key = derive_meter_parameter_key(ROOT, SERIAL)
    request = authorise_parameters(PARAMETERS, serial=SERIAL, counter=8, parameter_key=key)
    with pytest.raises(ReplayedCounterError, match="counter 8 is not above the last accepted counter 8"):
        check_authorisation(request, serial=SERIAL, parameter_key=key, last_counter=8)


def test_an_authorisation_for_another_meter_is_refused_even_with_this_meters_key() -> None:
    key = derive_meter_parameter_key(ROOT, SERIAL)
    request = authorise_parameters(PARAMETERS, serial="G16-0002", counter=8, parameter_key=key)
    with pytest.raises(AuthorisationError, match="SET_PARAMETERS is not authorised for meter G16-0002"):
        check_authorisation(
            request,
            serial="G16-0002",
            parameter_key=derive_meter_parameter_key(ROOT, "G16-0002"),
            last_counter=0,
        )
    with pytest.raises(AuthorisationError):
        check_authorisation(request, serial=SERIAL, parameter_key=key, last_counter=0)


def test_altered_parameters_are_refused() -> None:
    key = derive_meter_parameter_key(ROOT, SERIAL)
    request = authorise_parameters(PARAMETERS, serial=SERIAL, counter=8, parameter_key=key)
    altered = type(request)(counter=8, parameters=MeterParameters(5_000, 99_999), mac=request.mac)
    with pytest.raises(AuthorisationError):
        check_authorisation(altered, serial=SERIAL, parameter_key=key, last_counter=0)


def test_a_raised_counter_without_a_new_mac_is_refused() -> None:
    key = derive_meter_parameter_key(ROOT, SERIAL)
    request = authorise_clock(AT, serial=SERIAL, counter=8, parameter_key=key)
    bumped = type(request)(counter=9, at=AT, mac=request.mac)
    with pytest.raises(AuthorisationError):
        check_authorisation(bumped, serial=SERIAL, parameter_key=key, last_counter=8)


def test_a_parameters_mac_does_not_authorise_a_clock_setting() -> None:
    key = derive_meter_parameter_key(ROOT, SERIAL)
    parameters = authorise_parameters(PARAMETERS, serial=SERIAL, counter=8, parameter_key=key)
    clock = authorise_clock(AT, serial=SERIAL, counter=8, parameter_key=key)
    assert parameters.mac != clock.mac


def test_an_authorisation_signed_with_the_reading_key_is_refused() -> None:
    request = authorise_clock(
        AT, serial=SERIAL, counter=8, parameter_key=derive_meter_reading_key(ROOT, SERIAL)
    )
    with pytest.raises(AuthorisationError):
        check_authorisation(
            request, serial=SERIAL, parameter_key=derive_meter_parameter_key(ROOT, SERIAL), last_counter=0
        )


def test_authorised_requests_hide_their_mac_in_repr() -> None:
    request = authorise_clock(
        AT, serial=SERIAL, counter=8, parameter_key=derive_meter_parameter_key(ROOT, SERIAL)
    )
    assert request.mac.hex() not in repr(request)
    assert "mac=<hidden>" in repr(request)


def test_a_token_request_is_not_signed() -> None:
    assert encode_request(EnterToken("1" * 20), 1)[6:-2] == b"1" * 20
