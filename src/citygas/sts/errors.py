"""Errors raised by the STS token engine.

Each is specific so that the vending and web layers can map it to a stable problem
``code`` without parsing messages.
"""

from __future__ import annotations

__all__ = [
    "AmountOutOfRangeError",
    "KeyExpiredError",
    "KeyVaultError",
    "StaTablesError",
    "StsError",
    "TidExhaustedError",
    "TokenCrcError",
    "TokenFormatError",
    "UnknownVendingKeyError",
    "UnsupportedAlgorithmError",
    "UnsupportedTokenError",
]


class StsError(Exception):
    """Base class of every error the STS engine raises on purpose."""

    code = "sts_error"


class TokenFormatError(StsError, ValueError):
    """A token string is not 20 decimal digits encoding a 66-bit number, or a field does not fit."""

    code = "sts_token_format"


class AmountOutOfRangeError(StsError, ValueError):
    """An amount is negative or above what the 16-bit amount field can carry (18 201 624)."""

    code = "sts_amount_out_of_range"


class TidExhaustedError(StsError, ValueError):
    """The next TID would not fit in 24 bits: the meter needs a rollover to a later base date."""

    code = "sts_tid_exhausted"


class KeyExpiredError(StsError):
    """The TID is past the key's expiry (TID > KEN x 65535): the meter would refuse the token."""

    code = "sts_key_expired"


class UnsupportedAlgorithmError(StsError, ValueError):
    """An EA or DKGA code the engine does not implement, or an EA07 use without licensed tables."""

    code = "sts_unsupported_algorithm"


class StaTablesError(StsError, ValueError):
    """The licensed STA table file is missing, malformed or fails its own check vectors."""

    code = "sts_sta_tables"


class KeyVaultError(StsError):
    """The key vault cannot open, decrypt or store a key (wrong master key, corrupt blob)."""

    code = "sts_key_vault"


class UnknownVendingKeyError(KeyVaultError, KeyError):
    """No vending key is stored under the requested key id."""

    code = "sts_unknown_vending_key"


class TokenCrcError(StsError, ValueError):
    """The decrypted token's CRC does not match: a mistyped token, or the wrong decoder key."""

    code = "sts_token_crc"


class UnsupportedTokenError(StsError, ValueError):
    """The token's class or subclass is reserved or not one this engine knows."""

    code = "sts_unsupported_token"
