"""Shared values: the key of the published CTSA01 conformance tests."""

from __future__ import annotations

import pytest

from citygas.sts import DecoderKey, DecoderKeyParameters, SoftwareKeyVault
from citygas.sts.keys import KeyGenerationAlgorithm

CONFORMANCE_VENDING_KEY = bytes.fromhex("abababababababab949494949494949401234567")
CONFORMANCE_PARAMS = DecoderKeyParameters(
    pan="600727000000000009", sgc="123457", ti=1, kt=2, krn=1, base_date=1993
)
CONFORMANCE_DECODER_KEY_HEX = "f94b6ed353c3bfdb113e2d3a7ea3c41d"
MASTER_KEY = bytes(range(32))


@pytest.fixture
def decoder_key() -> DecoderKey:
    return DecoderKey.from_hex(CONFORMANCE_DECODER_KEY_HEX)


@pytest.fixture
def vault() -> SoftwareKeyVault:
    vault = SoftwareKeyVault(MASTER_KEY)
    vault.store_vending_key("cgd-1/vk-1", CONFORMANCE_VENDING_KEY, KeyGenerationAlgorithm.DKGA04)
    return vault
