"""Property tests: round trips over random keys and fields, and single-digit error detection."""

from __future__ import annotations

import bisect
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from citygas.sts import (
    MAX_AMOUNT,
    AcceptOutcome,
    CreditToken,
    DecoderKey,
    DecoderState,
    EncryptionAlgorithm,
    ManagementToken,
    MeterConfig,
    MeterTokenAcceptor,
    StsError,
    decode_amount,
    decode_token,
    encode_amount,
    encode_token,
)
from citygas.sts.misty1 import Misty1

REPRESENTABLE = sorted(decode_amount(field) for field in range(0x10000))
keys = st.binary(min_size=16, max_size=16)
nibbles = st.integers(0, 15)
tids = st.integers(0, (1 << 24) - 1)
fields = st.integers(0, 0xFFFF)


@settings(max_examples=200, deadline=None)
@given(key=keys, block=st.integers(0, (1 << 64) - 1))
def test_misty1_decrypt_inverts_encrypt(key: bytes, block: int) -> None:
    cipher = Misty1(key)
    assert cipher.decrypt_block(cipher.encrypt_block(block)) == block


@settings(max_examples=300, deadline=None)
@given(key=keys, subclass=nibbles, rnd=nibbles, tid=tids, field=fields)
def test_credit_tokens_round_trip(key: bytes, subclass: int, rnd: int, tid: int, field: int) -> None:
    decoder_key = DecoderKey(key)
    token = CreditToken(subclass, rnd, tid, field)
    text = encode_token(token, decoder_key)
    assert len(text) == 20
    assert decode_token(text, decoder_key) == token


@settings(max_examples=200, deadline=None)
@given(key=keys, subclass=st.sampled_from([0, 1, 2, 5, 6, 7]), rnd=nibbles, tid=tids, field=fields)
def test_management_tokens_round_trip(key: bytes, subclass: int, rnd: int, tid: int, field: int) -> None:
    decoder_key = DecoderKey(key)
    token = ManagementToken(subclass, rnd, tid, field)
    assert decode_token(encode_token(token, decoder_key), decoder_key) == token


@settings(max_examples=500, deadline=None)
@given(requested=st.integers(0, MAX_AMOUNT))
def test_encoded_amount_is_the_smallest_representable_value_not_below_the_request(requested: int) -> None:
    encoded = encode_amount(requested)
    assert encoded.carried >= requested
    assert decode_amount(encoded.field) == encoded.carried
    # The next smaller representable value is below the request, so no tighter choice exists.
    position = bisect.bisect_left(REPRESENTABLE, encoded.carried)
    assert position == 0 or REPRESENTABLE[position - 1] < requested


def single_digit_variants(token: str) -> list[str]:
    return [
        token[:position] + digit + token[position + 1 :]
        for position in range(20)
        for digit in "0123456789"
        if digit != token[position]
    ]


def measure_single_digit_detection(samples: int, seed: int) -> tuple[int, int, int]:
    """(variants, rejected by the CRC layer, rejected by a gas meter) over ``samples`` random tokens."""
    rng = random.Random(seed)
    variants = crc_rejected = meter_rejected = 0
    for _ in range(samples):
        key_bytes = rng.randbytes(16)
        key = DecoderKey(key_bytes)
        tid = rng.randrange(1_000_000, 9_000_000)
        token = encode_token(CreditToken(2, rng.randrange(16), tid, rng.randrange(1, 2000)), key)
        for variant in single_digit_variants(token):
            variants += 1
            try:
                decode_token(variant, key)
            except StsError:
                crc_rejected += 1
            state = DecoderState(
                key_bytes, EncryptionAlgorithm.MISTY1, 2, 1, 1, 123457, 255, 1993, tids=[tid]
            )
            acceptor = MeterTokenAcceptor(state, MeterConfig(credit_subclasses=frozenset({2})))
            if acceptor.accept(variant, now=0.0).outcome is not AcceptOutcome.CREDIT_ADDED:
                meter_rejected += 1
    return variants, crc_rejected, meter_rejected


def test_single_digit_changes_are_detected() -> None:
    # Given 150 random gas credit tokens, each with all 180 single-digit changes
    variants, crc_rejected, meter_rejected = measure_single_digit_detection(samples=150, seed=2024)
    print(
        f"\nsingle-digit changes: {variants}; CRC layer rejects {crc_rejected / variants:.5%}; "
        f"a gas meter rejects {meter_rejected / variants:.5%}"
    )
    # Then a 16-bit CRC under encryption lets about 1 in 65 536 through, and the meter's
    # subclass, key expiry and TID rules catch most of those.
    assert variants == 150 * 180
    assert crc_rejected / variants > 0.9998
    assert meter_rejected / variants > 0.99995
