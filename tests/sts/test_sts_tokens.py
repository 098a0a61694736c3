"""Token layouts, the codec and the issuing functions."""

from __future__ import annotations

import pytest

from citygas.sts import (
    GAS_VOLUME_TENTH_SCM,
    CreditToken,
    DecoderKey,
    KeyExpiredError,
    ManagementToken,
    MeterTestToken,
    TokenCrcError,
    TokenFormatError,
    UnsupportedTokenError,
    decode_token,
    encode_token,
    issue_clear_credit,
    issue_clear_tamper_condition,
    issue_credit_token,
    issue_meter_test_token,
    issue_metered_credit,
    issue_set_maximum_phase_power_unbalance_limit,
    issue_set_maximum_power_limit,
    issue_set_tariff_rate,
)
from citygas.sts.tokens import parse_token_number, token_block


def test_the_worked_example_builds_block_and_token(decoder_key: DecoderKey) -> None:
    token = CreditToken(subclass=0, rnd=5, tid=5_871_660, amount_field=1)
    assert token_block(token) == 0x0559982C00012831
    assert encode_token(token, decoder_key) == "59386323472137426967"


def test_transposition_moves_the_class_bits_into_bits_28_and_27() -> None:
    token_class, block = parse_token_number("59386323472137426967")
    assert token_class == 0
    assert block == 0x38269A8E59319817


def test_issue_credit_token_returns_the_carried_amount(decoder_key: DecoderKey) -> None:
    issued = issue_credit_token(
        decoder_key=decoder_key, subclass=0, amount=20000, tid=5_915_565, ken=255, rnd=5
    )
    assert issued.token == "08362487434932116862"
    assert (issued.value16, issued.carried, issued.tid, issued.rnd) == (0x416A, 20004, 5_915_565, 5)


def test_issue_gas_credit_in_litres_records_what_the_meter_credits(decoder_key: DecoderKey) -> None:
    credit = issue_metered_credit(
        decoder_key=decoder_key,
        convention=GAS_VOLUME_TENTH_SCM,
        base_units=2550,
        tid=6_000_000,
        ken=255,
        rnd=3,
    )
    assert (credit.requested_base_units, credit.carried_base_units) == (2550, 2600)
    assert decode_token(credit.token, decoder_key) == CreditToken(2, 3, 6_000_000, 26)


def test_issue_refuses_a_tid_past_the_key_expiry(decoder_key: DecoderKey) -> None:
    with pytest.raises(KeyExpiredError):
        issue_credit_token(decoder_key=decoder_key, subclass=2, amount=10, tid=65_536, ken=1)


def test_management_tokens_round_trip_with_their_fields(decoder_key: DecoderKey) -> None:
    cases = [
        (issue_set_maximum_power_limit(decoder_key=decoder_key, limit_w=1000, tid=5_910_301, ken=255, rnd=5),
         ManagementToken(0, 5, 5_910_301, 1000)),
        (issue_clear_credit(decoder_key=decoder_key, tid=5_910_315, ken=255, rnd=5),
         ManagementToken(1, 5, 5_910_315, 0xFFFF)),
        (issue_set_tariff_rate(decoder_key=decoder_key, rate_field=0x1234, tid=7, ken=255, rnd=1),
         ManagementToken(2, 1, 7, 0x1234)),
        (issue_clear_tamper_condition(decoder_key=decoder_key, tid=5_910_360, ken=255, rnd=5),
         ManagementToken(5, 5, 5_910_360, 0)),
        (issue_set_maximum_phase_power_unbalance_limit(
            decoder_key=decoder_key, limit_w=10, tid=5_910_380, ken=255, rnd=5),
         ManagementToken(6, 5, 5_910_380, 10)),
    ]  # fmt: skip
    published = [
        "26521936751055502278",
        "59725289138639529749",
        None,
        "02455019196514047304",
        "16135127146988830614",
    ]
    for (issued, expected), token in zip(cases, published, strict=True):
        assert decode_token(issued.token, decoder_key) == expected
        if token is not None:
            assert issued.token == token


def test_limit_tokens_are_rounded_up_like_amounts(decoder_key: DecoderKey) -> None:
    issued = issue_set_maximum_power_limit(decoder_key=decoder_key, limit_w=20000, tid=9, ken=255)
    decoded = decode_token(issued.token, decoder_key)
    assert isinstance(decoded, ManagementToken)
    assert (issued.carried, decoded.limit_w) == (20004, 20004)


@pytest.mark.parametrize(
    ("digits", "subclass", "control", "mfr_code", "token"),
    [
        (2, 0, 68_719_476_735, 0, "56493153725450313471"),
        (4, 1, 268_435_455, 0, "02305843005052951967"),
        (4, 1, 5, 0x1234, None),
    ],
)
def test_meter_test_tokens_are_not_encrypted(
    digits: int, subclass: int, control: int, mfr_code: int, token: str | None
) -> None:
    issued = issue_meter_test_token(control=control, mfr_code=mfr_code, mfr_code_digits=digits)
    if token is not None:
        assert issued.token == token
    assert decode_token(issued.token, None) == MeterTestToken(subclass, control, mfr_code)


def test_grouped_tokens_decode_like_plain_ones(decoder_key: DecoderKey) -> None:
    assert decode_token("5938-6323-4721-3742-6967", decoder_key) == CreditToken(0, 5, 5_871_660, 1)
    assert decode_token("5938 6323 4721 3742 6967", decoder_key) == CreditToken(0, 5, 5_871_660, 1)


@pytest.mark.parametrize(
    "token", ["5938632347213742696", "593863234721374269670", "5938632347213742696x", ""]
)
def test_a_token_that_is_not_20_digits_is_a_format_error(token: str, decoder_key: DecoderKey) -> None:
    with pytest.raises(TokenFormatError, match="exactly 20 digits"):
        decode_token(token, decoder_key)


def test_a_number_above_66_bits_is_a_format_error(decoder_key: DecoderKey) -> None:
    with pytest.raises(TokenFormatError, match="66 bits"):
        decode_token("99999999999999999999", decoder_key)


def test_a_token_for_another_key_fails_its_crc() -> None:
    other_key = DecoderKey.from_hex("290e2626f5a0d106aad1aab6411589df")
    with pytest.raises(TokenCrcError, match="mistyped or meant for another meter"):
        decode_token("59386323472137426967", other_key)


def test_class_3_is_reserved(decoder_key: DecoderKey) -> None:
    # Given the worked example with its class bits (token bits 28..27) set to 3
    number = int("59386323472137426967") | (0b11 << 27)
    with pytest.raises(UnsupportedTokenError, match="class 3"):
        decode_token(f"{number:020d}", decoder_key)


def test_reserved_management_subclass_is_refused(decoder_key: DecoderKey) -> None:
    token = encode_token(ManagementToken(subclass=1, rnd=0, tid=1, value16=0), decoder_key)
    assert decode_token(token, decoder_key) == ManagementToken(1, 0, 1, 0)
    with pytest.raises(UnsupportedTokenError, match="subclass 12"):
        encode_token(ManagementToken(subclass=12, rnd=0, tid=1, value16=0), decoder_key)


def test_fields_that_do_not_fit_are_refused(decoder_key: DecoderKey) -> None:
    with pytest.raises(TokenFormatError, match="TID 16777216"):
        encode_token(CreditToken(subclass=2, rnd=0, tid=1 << 24, amount_field=1), decoder_key)
    with pytest.raises(TokenFormatError, match="RND 16"):
        encode_token(CreditToken(subclass=2, rnd=16, tid=1, amount_field=1), decoder_key)


def test_encrypted_tokens_need_a_key() -> None:
    with pytest.raises(ValueError, match="decoder key is required"):
        encode_token(CreditToken(2, 0, 1, 1), None)
