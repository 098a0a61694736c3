"""Money in integer paise and gas in integer litres at standard conditions. Never float.

Decimal appears only at the edges (parsing what a person typed, printing), with explicit rounding.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import NewType

Paise = NewType("Paise", int)
Litres = NewType("Litres", int)

PAISE_PER_RUPEE = 100
LITRES_PER_SCM = 1000


class AmountError(ValueError):
    """A money or volume amount a person typed cannot be understood."""


def parse_rupees(text: str) -> Paise:
    """'1,234.50' or '₹ 99' → paise. More than two decimals is an error, not a silent rounding."""
    cleaned = text.replace("₹", "").replace(",", "").replace(" ", "").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise AmountError(f"'{text}' is not an amount in rupees") from exc
    if not value.is_finite():
        raise AmountError(f"'{text}' is not an amount in rupees")
    if value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise AmountError(f"'{text}' has more than two decimal places")
    return Paise(int((value * PAISE_PER_RUPEE).to_integral_value(rounding=ROUND_HALF_UP)))


def group_indian(digits: str) -> str:
    """Indian digit grouping: 1,23,45,678 (thousands, then lakhs and crores in pairs)."""
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    pairs: list[str] = []
    while len(head) > 2:
        pairs.insert(0, head[-2:])
        head = head[:-2]
    if head:
        pairs.insert(0, head)
    return ",".join([*pairs, tail])


def format_inr(paise: int, *, symbol: bool = True) -> str:
    """12345678 → '₹1,23,456.78'."""
    sign = "-" if paise < 0 else ""
    rupees, rest = divmod(abs(paise), PAISE_PER_RUPEE)
    text = f"{sign}{group_indian(str(rupees))}.{rest:02d}"
    return f"₹{text}" if symbol else text


def format_scm(litres: int) -> str:
    """Litres at standard conditions → '12.345 SCM'."""
    sign = "-" if litres < 0 else ""
    whole, rest = divmod(abs(litres), LITRES_PER_SCM)
    return f"{sign}{whole}.{rest:03d} SCM"
