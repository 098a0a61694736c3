"""The STS 16-bit amount field and citygas's conventions for what one count means.

The field is a 2-bit exponent ``e`` and a 14-bit mantissa ``m``:
``value = m * 10**e + sum(16384 * 10**(i - 1) for i in 1..e)``. Not every value is
representable above 16 383, so a request is rounded **up** to the next representable
value: the customer never gets less than they paid for, and the ledger must credit the
carried value, which :func:`encode_amount` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from citygas.sts.errors import AmountOutOfRangeError

__all__ = [
    "GAS_CURRENCY_TENTH_RUPEE",
    "GAS_VOLUME_TENTH_SCM",
    "MAX_AMOUNT",
    "AmountConvention",
    "EncodedAmount",
    "decode_amount",
    "encode_amount",
]

_MANTISSA_MAX: Final = 0x3FFF
# Offsets for e = 0..3: each exponent range starts where the previous one ended.
_OFFSETS: Final = (0, 16_384, 180_224, 1_818_624)
_SCALES: Final = (1, 10, 100, 1000)
MAX_AMOUNT: Final = _OFFSETS[3] + _MANTISSA_MAX * _SCALES[3]  # 18 201 624, field 0xFFFF


@dataclass(frozen=True, slots=True)
class EncodedAmount:
    """The 16-bit field for a request, and the amount the meter will actually credit."""

    field: int
    carried: int


def decode_amount(field: int) -> int:
    """The amount (in counts of the subclass's unit) that a 16-bit field carries."""
    if not 0 <= field <= 0xFFFF:
        raise AmountOutOfRangeError(f"amount field {field} does not fit in 16 bits")
    exponent = field >> 14
    return (field & _MANTISSA_MAX) * _SCALES[exponent] + _OFFSETS[exponent]


def encode_amount(requested: int) -> EncodedAmount:
    """Encode ``requested`` counts, rounding up to the smallest representable value >= it."""
    if requested < 0:
        raise AmountOutOfRangeError(f"amount {requested} is negative")
    if requested > MAX_AMOUNT:
        raise AmountOutOfRangeError(
            f"amount {requested} exceeds the largest STS amount {MAX_AMOUNT}; split it into several tokens"
        )
    for exponent in range(4):
        offset = _OFFSETS[exponent]
        scale = _SCALES[exponent]
        if requested <= offset + _MANTISSA_MAX * scale:
            mantissa = max(0, -((offset - requested) // scale))  # ceil((requested - offset) / scale)
            return EncodedAmount(field=(exponent << 14) | mantissa, carried=offset + mantissa * scale)
    raise AssertionError("unreachable: MAX_AMOUNT is checked above")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class AmountConvention:
    """What one count of a credit token's amount means for a meter model.

    STS carries only a number; the unit is an agreement between the vending system and
    the meter maker, so it belongs to the meter model. citygas keeps money in paise and
    gas in litres; ``base_units_per_count`` converts between those and token counts.
    """

    subclass: int
    base_unit: str
    base_units_per_count: int

    def __post_init__(self) -> None:
        if not 0 <= self.subclass <= 15:
            raise ValueError(f"subclass {self.subclass} is not 0..15")
        if self.base_units_per_count <= 0:
            raise ValueError("base_units_per_count must be positive")

    def quantise(self, base_units: int) -> tuple[EncodedAmount, int]:
        """Encode an amount in base units; return the field and the base units the meter will credit.

        Rounds up twice in the customer's favour: base units to whole counts, then counts to
        a representable field value.
        """
        if base_units < 0:
            raise AmountOutOfRangeError(f"amount {base_units} {self.base_unit} is negative")
        counts = -(-base_units // self.base_units_per_count)
        encoded = encode_amount(counts)
        return encoded, encoded.carried * self.base_units_per_count

    def to_base_units(self, counts: int) -> int:
        """Base units that ``counts`` token counts stand for."""
        return counts * self.base_units_per_count


# Gas volume, class 0 subclass 2: 0.1 m3 (standard cubic metre) per count, as in the
# conformance tests; 1 SCM = 1000 L, so 100 L per count. Some makers use finer steps.
GAS_VOLUME_TENTH_SCM: Final = AmountConvention(subclass=2, base_unit="litre", base_units_per_count=100)
# Gas currency, class 0 subclass 6: citygas's default is tenths of a rupee (10 paise)
# on the same 16-bit encoding. IEC 62055-41:2018's currency encoding is not public.
GAS_CURRENCY_TENTH_RUPEE: Final = AmountConvention(subclass=6, base_unit="paisa", base_units_per_count=10)
