"""STS token layouts and the 20-digit codec: block, CRC, encryption, transposition.

A token is a 64-bit block (bit 63 first) whose low 16 bits are a CRC. Class 0 and 2
blocks are encrypted with the meter's decoder key; class 1 (meter test) blocks are not.
The 2 class bits are then put in bits 28 and 27 of the block, the two bits they displace
move to bits 65 and 64, and the 66-bit number is written as 20 decimal digits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Final

from citygas.sts.amounts import decode_amount
from citygas.sts.crc import token_crc
from citygas.sts.errors import TokenCrcError, TokenFormatError, UnsupportedTokenError
from citygas.sts.keys import DecoderKey
from citygas.sts.tid import MAX_TID

__all__ = [
    "ALL_REGISTERS",
    "CreditSubclass",
    "CreditToken",
    "KeyChangeSection1",
    "KeyChangeSection2",
    "KeyChangeSection3",
    "KeyChangeSection4",
    "ManagementSubclass",
    "ManagementToken",
    "MeterTestToken",
    "Token",
    "TokenClass",
    "decode_token",
    "encode_token",
    "format_token",
    "parse_token_number",
    "token_block",
]

_MASK64: Final = (1 << 64) - 1
_CLASS_BITS: Final = 0b11 << 27
TOKEN_DIGITS: Final = 20
ALL_REGISTERS: Final = 0xFFFF


class TokenClass(IntEnum):
    TRANSFER_CREDIT = 0
    INITIATE_METER_TEST = 1
    MANAGEMENT = 2
    RESERVED = 3


class CreditSubclass(IntEnum):
    """Class 0 subclasses. citygas sells gas by volume (2) or by money (6)."""

    ELECTRICITY = 0
    WATER = 1
    GAS_VOLUME = 2
    TIME = 3
    ELECTRICITY_CURRENCY = 4
    WATER_CURRENCY = 5
    GAS_CURRENCY = 6
    TIME_CURRENCY = 7


class ManagementSubclass(IntEnum):
    """Class 2 subclasses."""

    SET_MAXIMUM_POWER_LIMIT = 0
    CLEAR_CREDIT = 1
    SET_TARIFF_RATE = 2
    KEY_CHANGE_SECTION_1 = 3
    KEY_CHANGE_SECTION_2 = 4
    CLEAR_TAMPER_CONDITION = 5
    SET_MAXIMUM_PHASE_POWER_UNBALANCE_LIMIT = 6
    SET_WATER_METER_FACTOR = 7
    KEY_CHANGE_SECTION_3 = 8
    KEY_CHANGE_SECTION_4 = 9


_TID_BEARING_MANAGEMENT: Final = frozenset({0, 1, 2, 5, 6, 7})
_LIMIT_SUBCLASSES: Final = frozenset({0, 6})


def _check_field(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise TokenFormatError(f"{name} {value} does not fit in {bits} bits")


@dataclass(frozen=True, slots=True)
class CreditToken:
    """Class 0 TransferCredit: ``amount_field`` is the 16-bit encoded amount."""

    token_class: ClassVar[TokenClass] = TokenClass.TRANSFER_CREDIT
    subclass: int
    rnd: int
    tid: int
    amount_field: int

    @property
    def amount(self) -> int:
        """Counts of the subclass's unit that the meter credits (e.g. tenths of m3)."""
        return decode_amount(self.amount_field)


@dataclass(frozen=True, slots=True)
class ManagementToken:
    """Class 2 TID-bearing tokens: limits, ClearCredit, SetTariffRate, ClearTamperCondition."""

    token_class: ClassVar[TokenClass] = TokenClass.MANAGEMENT
    subclass: int
    rnd: int
    tid: int
    value16: int

    @property
    def limit_w(self) -> int | None:
        """The decoded limit in watts for 2/0 and 2/6 (same encoding as amounts, no x10)."""
        return decode_amount(self.value16) if self.subclass in _LIMIT_SUBCLASSES else None


@dataclass(frozen=True, slots=True)
class KeyChangeSection1:
    """2/3: high nibble of the new KEN, KRN, rollover and RES bits, KT, key bytes k0..k3."""

    token_class: ClassVar[TokenClass] = TokenClass.MANAGEMENT
    subclass: ClassVar[int] = 3
    ken_high: int
    krn: int
    rollover: int
    res: int
    kt: int
    key_part: int = field(repr=False)  # new key bytes: never printed


@dataclass(frozen=True, slots=True)
class KeyChangeSection2:
    """2/4: low nibble of the new KEN, TI, and key bytes k12..k15 (k4..k7 of a 64-bit key)."""

    token_class: ClassVar[TokenClass] = TokenClass.MANAGEMENT
    subclass: ClassVar[int] = 4
    ken_low: int
    ti: int
    key_part: int = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyChangeSection3:
    """2/8: SGC bits 11..0 and key bytes k4..k7 (128-bit keys only)."""

    token_class: ClassVar[TokenClass] = TokenClass.MANAGEMENT
    subclass: ClassVar[int] = 8
    sgc_low: int
    key_part: int = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyChangeSection4:
    """2/9: SGC bits 23..12 and key bytes k8..k11 (128-bit keys only)."""

    token_class: ClassVar[TokenClass] = TokenClass.MANAGEMENT
    subclass: ClassVar[int] = 9
    sgc_high: int
    key_part: int = field(repr=False)


@dataclass(frozen=True, slots=True)
class MeterTestToken:
    """Class 1 InitiateMeterTest/Display; subclass 0 has a 2-digit, subclass 1 a 4-digit MfrCode."""

    token_class: ClassVar[TokenClass] = TokenClass.INITIATE_METER_TEST
    subclass: int
    control: int
    mfr_code: int


Token = (
    CreditToken
    | ManagementToken
    | KeyChangeSection1
    | KeyChangeSection2
    | KeyChangeSection3
    | KeyChangeSection4
    | MeterTestToken
)


def _tid_block(subclass: int, rnd: int, tid: int, value16: int) -> int:
    _check_field("subclass", subclass, 4)
    _check_field("RND", rnd, 4)
    _check_field("TID", tid, 24)
    _check_field("16-bit value", value16, 16)
    return (subclass << 60) | (rnd << 56) | (tid << 32) | (value16 << 16)


def _data_block(token: Token) -> int:  # noqa: PLR0911 - one return per layout
    """The 64-bit block of ``token`` with zero in place of the CRC."""
    match token:
        case CreditToken(subclass=subclass, rnd=rnd, tid=tid, amount_field=amount_field):
            return _tid_block(subclass, rnd, tid, amount_field)
        case ManagementToken(subclass=subclass, rnd=rnd, tid=tid, value16=value16):
            if subclass not in _TID_BEARING_MANAGEMENT:
                raise UnsupportedTokenError(
                    f"class 2 subclass {subclass} is not a TID-bearing management token"
                )
            return _tid_block(subclass, rnd, tid, value16)
        case KeyChangeSection1(ken_high=ken_high, krn=krn, rollover=ro, res=res, kt=kt, key_part=part):
            for name, value, bits in (
                ("KENHO", ken_high, 4),
                ("KRN", krn, 4),
                ("RO", ro, 1),
                ("RES", res, 1),
                ("KT", kt, 2),
                ("NKHO", part, 32),
            ):
                _check_field(name, value, bits)
            return (
                (3 << 60)
                | (ken_high << 56)
                | (krn << 52)
                | (ro << 51)
                | (res << 50)
                | (kt << 48)
                | (part << 16)
            )
        case KeyChangeSection2(ken_low=ken_low, ti=ti, key_part=part):
            for name, value, bits in (("KENLO", ken_low, 4), ("TI", ti, 8), ("NKLO", part, 32)):
                _check_field(name, value, bits)
            return (4 << 60) | (ken_low << 56) | (ti << 48) | (part << 16)
        case KeyChangeSection3(sgc_low=sgc_low, key_part=part):
            _check_field("SGC low bits", sgc_low, 12)
            _check_field("NKMO2", part, 32)
            return (8 << 60) | (sgc_low << 48) | (part << 16)
        case KeyChangeSection4(sgc_high=sgc_high, key_part=part):
            _check_field("SGC high bits", sgc_high, 12)
            _check_field("NKMO1", part, 32)
            return (9 << 60) | (sgc_high << 48) | (part << 16)
        case MeterTestToken(subclass=0, control=control, mfr_code=mfr):
            _check_field("Control", control, 36)
            _check_field("2-digit MfrCode", mfr, 8)
            return (control << 24) | (mfr << 16)
        case MeterTestToken(subclass=1, control=control, mfr_code=mfr):
            _check_field("Control", control, 28)
            _check_field("4-digit MfrCode", mfr, 16)
            return (1 << 60) | (control << 32) | (mfr << 16)
        case MeterTestToken(subclass=subclass):
            raise UnsupportedTokenError(f"class 1 subclass {subclass} is reserved")
    raise TypeError(f"not an STS token: {token!r}")  # pragma: no cover


def token_block(token: Token) -> int:
    """The 64-bit plaintext block of ``token``, CRC included."""
    block = _data_block(token)
    return block | token_crc(token.token_class, block)


def _transpose(token_class: int, encrypted: int) -> int:
    displaced = (encrypted >> 27) & 0b11
    return (displaced << 64) | (encrypted & ~_CLASS_BITS) | (token_class << 27)


def format_token(number: int) -> str:
    """The 66-bit token number as 20 digits, leading zeros kept."""
    return f"{number:020d}"


def encode_token(token: Token, decoder_key: DecoderKey | None) -> str:
    """The 20-digit token for ``token``; class 1 needs no key (pass ``None``)."""
    block = token_block(token)
    if token.token_class is not TokenClass.INITIATE_METER_TEST:
        if decoder_key is None:
            raise ValueError("class 0 and class 2 tokens are encrypted: a decoder key is required")
        block = decoder_key.cipher().encrypt_block(block)
    return format_token(_transpose(token.token_class, block))


def parse_token_number(token: str) -> tuple[int, int]:
    """Split a 20-digit token into (class, the 64-bit block before decryption).

    Spaces and hyphens used when a token is printed in groups are ignored.
    """
    digits = token.replace(" ", "").replace("-", "")
    if len(digits) != TOKEN_DIGITS or not digits.isascii() or not digits.isdigit():
        raise TokenFormatError("a token is exactly 20 digits")
    number = int(digits)
    if number >> 66:
        raise TokenFormatError("the token number is larger than 66 bits, so it cannot be an STS token")
    token_class = (number >> 27) & 0b11
    block = (number & _MASK64 & ~_CLASS_BITS) | (((number >> 64) & 0b11) << 27)
    return token_class, block


def _parse_block(token_class: int, block: int) -> Token:  # noqa: PLR0911 - one return per layout
    subclass = block >> 60
    if token_class == TokenClass.TRANSFER_CREDIT:
        return CreditToken(subclass, (block >> 56) & 0xF, (block >> 32) & MAX_TID, (block >> 16) & 0xFFFF)
    if token_class == TokenClass.INITIATE_METER_TEST:
        if subclass == 0:
            return MeterTestToken(0, (block >> 24) & ((1 << 36) - 1), (block >> 16) & 0xFF)
        if subclass == 1:
            return MeterTestToken(1, (block >> 32) & ((1 << 28) - 1), (block >> 16) & 0xFFFF)
        raise UnsupportedTokenError(f"class 1 subclass {subclass} is reserved")
    if token_class == TokenClass.MANAGEMENT:
        key_part = (block >> 16) & 0xFFFF_FFFF
        if subclass in _TID_BEARING_MANAGEMENT:
            return ManagementToken(
                subclass, (block >> 56) & 0xF, (block >> 32) & MAX_TID, (block >> 16) & 0xFFFF
            )
        if subclass == ManagementSubclass.KEY_CHANGE_SECTION_1:
            return KeyChangeSection1(
                ken_high=(block >> 56) & 0xF,
                krn=(block >> 52) & 0xF,
                rollover=(block >> 51) & 1,
                res=(block >> 50) & 1,
                kt=(block >> 48) & 0b11,
                key_part=key_part,
            )
        if subclass == ManagementSubclass.KEY_CHANGE_SECTION_2:
            return KeyChangeSection2(ken_low=(block >> 56) & 0xF, ti=(block >> 48) & 0xFF, key_part=key_part)
        if subclass == ManagementSubclass.KEY_CHANGE_SECTION_3:
            return KeyChangeSection3(sgc_low=(block >> 48) & 0xFFF, key_part=key_part)
        if subclass == ManagementSubclass.KEY_CHANGE_SECTION_4:
            return KeyChangeSection4(sgc_high=(block >> 48) & 0xFFF, key_part=key_part)
        raise UnsupportedTokenError(f"class 2 subclass {subclass} is reserved")
    raise UnsupportedTokenError("token class 3 is reserved")


def decode_token(token: str, decoder_key: DecoderKey | None) -> Token:
    """Decode a 20-digit token: undo the transposition, decrypt, check the CRC, read the fields.

    Raises :class:`TokenFormatError` for a malformed number, :class:`TokenCrcError` when the
    CRC fails (a mistyped token or a token for another meter or key), and
    :class:`UnsupportedTokenError` for a reserved class or subclass. A class 1 token decodes
    without a key.
    """
    token_class, block = parse_token_number(token)
    if token_class == TokenClass.RESERVED:
        raise UnsupportedTokenError("token class 3 is reserved")
    if token_class != TokenClass.INITIATE_METER_TEST:
        if decoder_key is None:
            raise ValueError("class 0 and class 2 tokens are encrypted: a decoder key is required")
        block = decoder_key.cipher().decrypt_block(block)
    if token_crc(token_class, block) != block & 0xFFFF:
        raise TokenCrcError(
            "the token's CRC does not match: it is mistyped or meant for another meter or key"
        )
    return _parse_block(token_class, block)


def group_token(token: str) -> str:
    """20 digits as a keypad, a receipt and an SMS show them: 1234 5678 9012 3456 7890."""
    return " ".join(token[i : i + 4] for i in range(0, len(token), 4))
