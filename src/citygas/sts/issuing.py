"""Issuing tokens: what the vending layer calls once it has a decoder key and a TID.

Every TID-bearing issue checks the key's expiry first, because a meter silently
refusing a paid-for token is the worst outcome for a customer. Amounts are rounded up
in the customer's favour and the carried amount is returned so the ledger records what
the meter will credit.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from citygas.sts.amounts import AmountConvention, encode_amount
from citygas.sts.keys import DecoderKey
from citygas.sts.tid import check_key_not_expired
from citygas.sts.tokens import (
    ALL_REGISTERS,
    CreditToken,
    ManagementSubclass,
    ManagementToken,
    MeterTestToken,
    TokenClass,
    encode_token,
)

__all__ = [
    "IssuedCredit",
    "IssuedToken",
    "issue_clear_credit",
    "issue_clear_tamper_condition",
    "issue_credit_token",
    "issue_management_token",
    "issue_meter_test_token",
    "issue_metered_credit",
    "issue_set_maximum_phase_power_unbalance_limit",
    "issue_set_maximum_power_limit",
    "issue_set_tariff_rate",
]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A generated token and the facts the caller must record with it."""

    token: str
    token_class: int
    subclass: int
    tid: int | None
    rnd: int | None
    value16: int
    carried: int | None = None  # amount (counts) or limit (W) the meter will apply, if any


@dataclass(frozen=True, slots=True)
class IssuedCredit:
    """A credit token issued in base units (litres or paise) under an :class:`AmountConvention`."""

    issued: IssuedToken
    requested_base_units: int
    carried_base_units: int

    @property
    def token(self) -> str:
        return self.issued.token


def _rnd(rnd: int | None) -> int:
    # RND only makes equal tokens look different; it needs no secrecy, but secrets is cheap.
    return secrets.randbelow(16) if rnd is None else rnd


def issue_credit_token(
    *, decoder_key: DecoderKey, subclass: int, amount: int, tid: int, ken: int, rnd: int | None = None
) -> IssuedToken:
    """A class 0 TransferCredit token for ``amount`` counts, rounded up to a representable value."""
    check_key_not_expired(tid, ken)
    encoded = encode_amount(amount)
    chosen_rnd = _rnd(rnd)
    token = encode_token(CreditToken(subclass, chosen_rnd, tid, encoded.field), decoder_key)
    return IssuedToken(
        token, TokenClass.TRANSFER_CREDIT, subclass, tid, chosen_rnd, encoded.field, encoded.carried
    )


def issue_metered_credit(
    *,
    decoder_key: DecoderKey,
    convention: AmountConvention,
    base_units: int,
    tid: int,
    ken: int,
    rnd: int | None = None,
) -> IssuedCredit:
    """Gas credit in litres (subclass 2) or paise (subclass 6) under the meter model's convention."""
    encoded, carried_base_units = convention.quantise(base_units)
    issued = issue_credit_token(
        decoder_key=decoder_key,
        subclass=convention.subclass,
        amount=encoded.carried,
        tid=tid,
        ken=ken,
        rnd=rnd,
    )
    return IssuedCredit(issued, base_units, carried_base_units)


def issue_management_token(
    *, decoder_key: DecoderKey, subclass: int, value16: int, tid: int, ken: int, rnd: int | None = None
) -> IssuedToken:
    """A class 2 TID-bearing token with a raw 16-bit value field."""
    check_key_not_expired(tid, ken)
    chosen_rnd = _rnd(rnd)
    token = encode_token(ManagementToken(subclass, chosen_rnd, tid, value16), decoder_key)
    return IssuedToken(token, TokenClass.MANAGEMENT, subclass, tid, chosen_rnd, value16)


def _issue_limit(
    subclass: int, *, decoder_key: DecoderKey, limit_w: int, tid: int, ken: int, rnd: int | None
) -> IssuedToken:
    encoded = encode_amount(limit_w)
    issued = issue_management_token(
        decoder_key=decoder_key, subclass=subclass, value16=encoded.field, tid=tid, ken=ken, rnd=rnd
    )
    return IssuedToken(
        issued.token, issued.token_class, subclass, tid, issued.rnd, encoded.field, encoded.carried
    )


def issue_set_maximum_power_limit(
    *, decoder_key: DecoderKey, limit_w: int, tid: int, ken: int, rnd: int | None = None
) -> IssuedToken:
    """2/0 SetMaximumPowerLimit; the limit (watts, no x10) is rounded up like an amount."""
    return _issue_limit(
        ManagementSubclass.SET_MAXIMUM_POWER_LIMIT,
        decoder_key=decoder_key,
        limit_w=limit_w,
        tid=tid,
        ken=ken,
        rnd=rnd,
    )


def issue_set_maximum_phase_power_unbalance_limit(
    *, decoder_key: DecoderKey, limit_w: int, tid: int, ken: int, rnd: int | None = None
) -> IssuedToken:
    """2/6 SetMaximumPhasePowerUnbalanceLimit, in watts like 2/0."""
    return _issue_limit(
        ManagementSubclass.SET_MAXIMUM_PHASE_POWER_UNBALANCE_LIMIT,
        decoder_key=decoder_key,
        limit_w=limit_w,
        tid=tid,
        ken=ken,
        rnd=rnd,
    )


def issue_clear_credit(
    *, decoder_key: DecoderKey, tid: int, ken: int, register: int = ALL_REGISTERS, rnd: int | None = None
) -> IssuedToken:
    """2/1 ClearCredit for one register identifier, or 0xFFFF for all registers."""
    return issue_management_token(
        decoder_key=decoder_key,
        subclass=ManagementSubclass.CLEAR_CREDIT,
        value16=register,
        tid=tid,
        ken=ken,
        rnd=rnd,
    )


def issue_set_tariff_rate(
    *, decoder_key: DecoderKey, rate_field: int, tid: int, ken: int, rnd: int | None = None
) -> IssuedToken:
    """2/2 SetTariffRate with the raw 16-bit Rate field (its meaning is reserved by the STSA)."""
    return issue_management_token(
        decoder_key=decoder_key,
        subclass=ManagementSubclass.SET_TARIFF_RATE,
        value16=rate_field,
        tid=tid,
        ken=ken,
        rnd=rnd,
    )


def issue_clear_tamper_condition(
    *, decoder_key: DecoderKey, tid: int, ken: int, rnd: int | None = None
) -> IssuedToken:
    """2/5 ClearTamperCondition (the 16-bit field is a zero pad)."""
    return issue_management_token(
        decoder_key=decoder_key,
        subclass=ManagementSubclass.CLEAR_TAMPER_CONDITION,
        value16=0,
        tid=tid,
        ken=ken,
        rnd=rnd,
    )


def issue_meter_test_token(*, control: int, mfr_code: int, mfr_code_digits: int = 2) -> IssuedToken:
    """Class 1 InitiateMeterTest/Display; not encrypted, so any meter of the maker accepts it.

    ``mfr_code_digits`` 2 gives subclass 0 (36-bit Control, 8-bit MfrCode); 4 gives
    subclass 1 (28-bit Control, 16-bit MfrCode).
    """
    if mfr_code_digits not in (2, 4):
        raise ValueError("a manufacturer code has 2 or 4 digits")
    subclass = 0 if mfr_code_digits == 2 else 1
    token = encode_token(MeterTestToken(subclass, control, mfr_code), None)
    return IssuedToken(token, TokenClass.INITIATE_METER_TEST, subclass, None, None, mfr_code)
