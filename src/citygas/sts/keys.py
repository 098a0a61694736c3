"""Decoder keys and the parameters they are derived from.

A decoder key is the per-meter key that encrypts its tokens. It is derived from the
vending key (which never leaves the :class:`~citygas.sts.vault.KeyVault`) and the
meter's key parameters. Objects here never print key material: ``repr`` and ``str``
show only what the key is for.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from citygas.sts.errors import UnsupportedAlgorithmError
from citygas.sts.misty1 import Misty1
from citygas.sts.sta import Sta, StaTables
from citygas.sts.tid import BASE_DATES

__all__ = [
    "BlockCipher",
    "DecoderKey",
    "DecoderKeyParameters",
    "EncryptionAlgorithm",
    "KeyGenerationAlgorithm",
    "KeyType",
    "pan_check_digit_is_valid",
]


class EncryptionAlgorithm(StrEnum):
    """STS encryption algorithm codes (EA)."""

    STA = "07"  # 64-bit key, licensed tables
    MISTY1 = "11"  # 128-bit key, RFC 2994

    @property
    def key_bytes(self) -> int:
        return 8 if self is EncryptionAlgorithm.STA else 16


class KeyGenerationAlgorithm(StrEnum):
    """STS decoder key generation algorithm codes (DKGA)."""

    DKGA02 = "02"  # single DES, 64-bit vending key
    DKGA04 = "04"  # HMAC-SHA-256 KDF, 160-bit vending key


class KeyType:
    """STS key types (KT), as plain ints because the token fields carry them as 2 bits."""

    DITK = 0  # initialisation key: factory only
    DDTK = 1  # default key: credit is refused under it
    DUTK = 2  # unique key: the normal key of an installed meter
    DCTK = 3  # common key: shared by a supply group

    ALL = (DITK, DDTK, DUTK, DCTK)


class BlockCipher(Protocol):
    """A 64-bit block cipher on ints, as EA07 and EA11 are used by the token layer."""

    def encrypt_block(self, block: int) -> int: ...

    def decrypt_block(self, block: int) -> int: ...


def pan_check_digit_is_valid(pan: str) -> bool:
    """Whether the last digit of an 18-digit MeterPAN is the Luhn check digit of the rest."""
    if len(pan) != 18 or not pan.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(pan)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


@dataclass(frozen=True, slots=True)
class DecoderKeyParameters:
    """Everything besides the vending key that a decoder key is derived from."""

    pan: str
    sgc: str
    ti: int
    kt: int
    krn: int
    base_date: int = 1993
    ea: EncryptionAlgorithm = EncryptionAlgorithm.MISTY1
    dkga: KeyGenerationAlgorithm = KeyGenerationAlgorithm.DKGA04

    def __post_init__(self) -> None:
        if len(self.pan) != 18 or not self.pan.isdigit():
            raise ValueError(f"MeterPAN {self.pan!r} must be 18 digits including its check digit")
        if len(self.sgc) != 6 or not self.sgc.isdigit():
            raise ValueError(f"supply group code {self.sgc!r} must be 6 digits")
        if not 0 <= self.ti <= 99:
            raise ValueError(f"tariff index {self.ti} is outside 0..99")
        if self.kt not in KeyType.ALL:
            raise ValueError(f"key type {self.kt} is outside 0..3")
        if not 1 <= self.krn <= 9:
            raise ValueError(f"key revision number {self.krn} is outside 1..9")
        if self.base_date not in BASE_DATES:
            raise ValueError(f"base date {self.base_date} is not one of {BASE_DATES}")
        object.__setattr__(self, "ea", EncryptionAlgorithm(self.ea))
        object.__setattr__(self, "dkga", KeyGenerationAlgorithm(self.dkga))


class DecoderKey:
    """A meter's decoder key plus the algorithm it is for; the cipher is built once and kept."""

    __slots__ = ("_cipher", "_material", "_sta_tables", "ea")

    def __init__(
        self,
        material: bytes,
        ea: EncryptionAlgorithm = EncryptionAlgorithm.MISTY1,
        *,
        sta_tables: StaTables | None = None,
    ) -> None:
        ea = EncryptionAlgorithm(ea)
        if len(material) != ea.key_bytes:
            raise ValueError(f"an EA{ea.value} decoder key is {ea.key_bytes} bytes, got {len(material)}")
        self._material = bytes(material)
        self.ea = ea
        self._sta_tables = sta_tables
        self._cipher: BlockCipher | None = None

    @classmethod
    def from_hex(
        cls,
        hex_key: str,
        ea: EncryptionAlgorithm = EncryptionAlgorithm.MISTY1,
        *,
        sta_tables: StaTables | None = None,
    ) -> DecoderKey:
        return cls(bytes.fromhex(hex_key), ea, sta_tables=sta_tables)

    @property
    def bits(self) -> int:
        return len(self._material) * 8

    def material(self) -> bytes:
        """The raw key bytes. Only for key-change tokens, meter state and tests: never log them."""
        return self._material

    def cipher(self) -> BlockCipher:
        """The block cipher for this key, with its key schedule computed on first use."""
        if self._cipher is None:
            if self.ea is EncryptionAlgorithm.MISTY1:
                self._cipher = Misty1(self._material)
            elif self._sta_tables is None:
                raise UnsupportedAlgorithmError(
                    "EA07 needs the licensed STA tables: load them with load_sta_tables(path) "
                    "and pass them as sta_tables"
                )
            else:
                self._cipher = Sta(self._material, self._sta_tables)
        return self._cipher

    def with_material(self, material: bytes) -> DecoderKey:
        """A key for the same algorithm (and STA tables) with new material, as after a key change."""
        return DecoderKey(material, self.ea, sta_tables=self._sta_tables)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DecoderKey):
            return NotImplemented
        return self.ea is other.ea and hmac.compare_digest(self._material, other._material)

    def __hash__(self) -> int:
        return hash((self.ea, self._material))

    def __repr__(self) -> str:
        return f"DecoderKey(EA{self.ea.value}, {self.bits} bits, <hidden>)"

    __str__ = __repr__
