"""Decoder key generation: DKGA04 (HMAC-SHA-256 KDF) and DKGA02 (DES).

These functions take the raw vending key, so only a :class:`~citygas.sts.vault.KeyVault`
(or an HSM behind one) should call them in production.
"""

from __future__ import annotations

import hashlib
import hmac

from citygas.sts.des import des_encrypt_block
from citygas.sts.keys import (
    DecoderKey,
    DecoderKeyParameters,
    EncryptionAlgorithm,
    KeyGenerationAlgorithm,
    KeyType,
)
from citygas.sts.sta import StaTables

__all__ = [
    "derive_decoder_key",
    "derive_decoder_key_dkga02",
    "derive_decoder_key_dkga04",
    "dkga02_data_block",
    "dkga04_data",
]

_DKGA04_VENDING_KEY_BYTES = 20
_DKGA02_VENDING_KEY_BYTES = 8


def _length_prefixed(text: str) -> bytes:
    encoded = text.encode("ascii")
    return bytes([len(encoded)]) + encoded


def dkga04_data(params: DecoderKeyParameters) -> bytes:
    """The KDF input of DKGA04 (NIST SP 800-108, counter mode, one HMAC-SHA-256 block).

    ``04 | 02 "04" | 02 BD | 02 EA | 02 TI | 00 | 04 | 06 SGC | 01 KT | 01 KRN | 12 PAN | L``,
    where ``nn "text"`` is a length byte and ASCII text and L is the output length in bits.
    """
    bits = params.ea.key_bytes * 8
    return b"".join(
        (
            b"\x04",
            _length_prefixed("04"),
            _length_prefixed(f"{params.base_date % 100:02d}"),
            _length_prefixed(params.ea.value),
            _length_prefixed(f"{params.ti:02d}"),
            b"\x00",
            b"\x04",
            _length_prefixed(params.sgc),
            _length_prefixed(str(params.kt)),
            _length_prefixed(str(params.krn)),
            _length_prefixed(params.pan),
            bits.to_bytes(4, "big"),
        )
    )


def derive_decoder_key_dkga04(
    vending_key: bytes, params: DecoderKeyParameters, *, sta_tables: StaTables | None = None
) -> DecoderKey:
    """DKGA04: the first 16 bytes (EA11) of HMAC-SHA-256(vending key, :func:`dkga04_data`).

    For EA07 the output length L is 64 and the first 8 bytes are taken; no published
    vector covers that combination.
    """
    if len(vending_key) != _DKGA04_VENDING_KEY_BYTES:
        raise ValueError(f"a DKGA04 vending key is 160 bits (20 bytes), got {len(vending_key)} bytes")
    digest = hmac.new(vending_key, dkga04_data(params), hashlib.sha256).digest()
    return DecoderKey(digest[: params.ea.key_bytes], params.ea, sta_tables=sta_tables)


def dkga02_data_block(params: DecoderKeyParameters) -> bytes:
    """PANBlock XOR CONTROLBlock, the 64-bit block DKGA02 encrypts.

    PANBlock is the 16 PAN digits after the first and before the check digit (so IIN
    600727 + 11-digit DRN gives ``00727`` + DRN), read as hex nibbles; for a common key
    (KT 3) the DRN part is zeros. CONTROLBlock is ``KT | SGC | TI | KRN | FFFFFF``.
    """
    iin_length = 4 if params.pan.startswith("0000") else 6
    pan_digits = params.pan[1:17]
    if params.kt == KeyType.DCTK:
        kept = iin_length - 1
        pan_digits = pan_digits[:kept] + "0" * (16 - kept)
    control = f"{params.kt}{params.sgc}{params.ti:02d}{params.krn}FFFFFF"
    return (int(pan_digits, 16) ^ int(control, 16)).to_bytes(8, "big")


def derive_decoder_key_dkga02(
    vending_key: bytes, params: DecoderKeyParameters, *, sta_tables: StaTables | None = None
) -> DecoderKey:
    """DKGA02: ``DES(VK, D) XOR D XOR VK`` with D = :func:`dkga02_data_block`, a 64-bit key.

    The construction follows public descriptions of IEC 62055-41 DKGA02; there is no public
    conformance vector for it, so confirm it against a licensed vector before production use.
    """
    if len(vending_key) != _DKGA02_VENDING_KEY_BYTES:
        raise ValueError(f"a DKGA02 vending key is 64 bits (8 bytes), got {len(vending_key)} bytes")
    data = dkga02_data_block(params)
    encrypted = des_encrypt_block(vending_key, data)
    material = bytes(e ^ d ^ v for e, d, v in zip(encrypted, data, vending_key, strict=True))
    return DecoderKey(material, EncryptionAlgorithm.STA, sta_tables=sta_tables)


def derive_decoder_key(
    vending_key: bytes, params: DecoderKeyParameters, *, sta_tables: StaTables | None = None
) -> DecoderKey:
    """Derive with the DKGA named in ``params``."""
    if params.dkga is KeyGenerationAlgorithm.DKGA04:
        return derive_decoder_key_dkga04(vending_key, params, sta_tables=sta_tables)
    if params.ea is not EncryptionAlgorithm.STA:
        raise ValueError("DKGA02 yields 64-bit keys, which only EA07 uses")
    return derive_decoder_key_dkga02(vending_key, params, sta_tables=sta_tables)
