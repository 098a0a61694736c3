"""EA11 (MISTY1), DKGA04, DES and DKGA02 against published values."""

from __future__ import annotations

import pytest

from citygas.sts import DecoderKey, DecoderKeyParameters, derive_decoder_key_dkga02, derive_decoder_key_dkga04
from citygas.sts.crc import crc16_modbus
from citygas.sts.des import des_decrypt_block, des_encrypt_block
from citygas.sts.kdf import dkga02_data_block, dkga04_data
from citygas.sts.keys import EncryptionAlgorithm, KeyGenerationAlgorithm, pan_check_digit_is_valid
from citygas.sts.misty1 import Misty1

from .conftest import CONFORMANCE_DECODER_KEY_HEX, CONFORMANCE_PARAMS, CONFORMANCE_VENDING_KEY


@pytest.mark.parametrize(
    ("plaintext", "ciphertext"),
    [("0123456789abcdef", "8b1da5f56ab3d07c"), ("fedcba9876543210", "04b68240b13be95d")],
)
def test_misty1_reproduces_the_rfc_2994_test_vectors(plaintext: str, ciphertext: str) -> None:
    # Given the key of RFC 2994's appendix
    cipher = Misty1(bytes.fromhex("00112233445566778899aabbccddeeff"))
    # Then encryption and decryption match the published pair
    assert cipher.encrypt(bytes.fromhex(plaintext)).hex() == ciphertext
    assert cipher.decrypt(bytes.fromhex(ciphertext)).hex() == plaintext


def test_misty1_encrypts_the_readme_worked_example_block() -> None:
    cipher = Misty1(bytes.fromhex(CONFORMANCE_DECODER_KEY_HEX))
    assert cipher.encrypt_block(0x0559982C00012831) == 0x38269A8E59319817


def test_misty1_refuses_a_key_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="16-byte key"):
        Misty1(b"short")


def test_dkga04_data_matches_the_worked_example_byte_for_byte() -> None:
    assert dkga04_data(CONFORMANCE_PARAMS).hex() == (
        "04023034023933023131023031000406313233343537013201311236303037323730303030303030303030303900000080"
    )


def test_dkga04_derives_the_published_decoder_keys_for_both_pan_forms() -> None:
    other_pan = DecoderKeyParameters(
        pan="000001000000000082", sgc="123457", ti=1, kt=2, krn=1, base_date=1993
    )
    assert derive_decoder_key_dkga04(CONFORMANCE_VENDING_KEY, CONFORMANCE_PARAMS) == DecoderKey.from_hex(
        CONFORMANCE_DECODER_KEY_HEX
    )
    assert derive_decoder_key_dkga04(CONFORMANCE_VENDING_KEY, other_pan).material().hex() == (
        "290e2626f5a0d106aad1aab6411589df"
    )


def test_dkga04_refuses_a_vending_key_that_is_not_160_bits() -> None:
    with pytest.raises(ValueError, match="160 bits"):
        derive_decoder_key_dkga04(bytes(16), CONFORMANCE_PARAMS)


@pytest.mark.parametrize(
    ("key", "plaintext", "ciphertext"),
    [
        # The classic worked example (Grabbe, "The DES Algorithm Illustrated").
        ("133457799bbcdff1", "0123456789abcdef", "85e813540f0ab405"),
        # NBS SP 500-20 style known answers.
        ("0e329232ea6d0d73", "8787878787878787", "0000000000000000"),
        ("0101010101010101", "95f8a5e5dd31d900", "8000000000000000"),
    ],
)
def test_des_matches_public_known_answers(key: str, plaintext: str, ciphertext: str) -> None:
    assert des_encrypt_block(bytes.fromhex(key), bytes.fromhex(plaintext)).hex() == ciphertext
    assert des_decrypt_block(bytes.fromhex(key), bytes.fromhex(ciphertext)).hex() == plaintext


def test_dkga02_data_block_is_pan_block_xor_control_block() -> None:
    # Given PAN 600727 + DRN 12345678901 (+ check digit), KT 2, SGC 123456, TI 07, KRN 1
    params = DecoderKeyParameters(
        pan="600727123456789010",
        sgc="123456",
        ti=7,
        kt=2,
        krn=1,
        ea=EncryptionAlgorithm.STA,
        dkga=KeyGenerationAlgorithm.DKGA02,
    )
    # Then PANBlock 0072712345678901 is XORed with CONTROLBlock 2123456071FFFFFF
    assert dkga02_data_block(params) == (0x0072712345678901 ^ 0x2123456071FFFFFF).to_bytes(8, "big")


def test_dkga02_is_des_of_the_data_block_xored_with_block_and_vending_key() -> None:
    params = DecoderKeyParameters(
        pan="600727123456789010",
        sgc="123456",
        ti=7,
        kt=2,
        krn=1,
        ea=EncryptionAlgorithm.STA,
        dkga=KeyGenerationAlgorithm.DKGA02,
    )
    vending_key = bytes.fromhex("0123456789abcdef")
    data = dkga02_data_block(params)
    expected = bytes(
        a ^ b ^ c for a, b, c in zip(des_encrypt_block(vending_key, data), data, vending_key, strict=True)
    )
    key = derive_decoder_key_dkga02(vending_key, params)
    assert key.material() == expected
    assert key.ea is EncryptionAlgorithm.STA


def test_dkga02_common_key_zeroes_the_drn_part_of_the_pan_block() -> None:
    params = DecoderKeyParameters(
        pan="600727123456789010",
        sgc="123456",
        ti=7,
        kt=3,
        krn=1,
        ea=EncryptionAlgorithm.STA,
        dkga=KeyGenerationAlgorithm.DKGA02,
    )
    assert dkga02_data_block(params) == (0x0072700000000000 ^ 0x3123456071FFFFFF).to_bytes(8, "big")


def test_crc16_modbus_has_the_standard_check_value() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37


def test_published_pans_have_valid_luhn_check_digits() -> None:
    assert pan_check_digit_is_valid("600727000000000009")
    assert pan_check_digit_is_valid("000001000000000082")
    assert not pan_check_digit_is_valid("600727000000000008")


def test_decoder_key_repr_names_no_key_material() -> None:
    key = DecoderKey.from_hex(CONFORMANCE_DECODER_KEY_HEX)
    assert CONFORMANCE_DECODER_KEY_HEX not in repr(key)
    assert CONFORMANCE_DECODER_KEY_HEX not in str(key)
    assert repr(key) == "DecoderKey(EA11, 128 bits, <hidden>)"
