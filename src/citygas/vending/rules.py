"""Pure rules of vending: channels, limits, the request fingerprint that makes a retry recognisable."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum


class Channel(StrEnum):
    ONLINE = "online"  # payment gateway (cards, net banking)
    UPI = "upi"  # UPI through the gateway
    BBPS = "bbps"  # Bharat Bill Payment System
    CSC = "csc"  # a Common Services Centre agent, from the agent's float
    B2B = "b2b"  # the CGD's own channels through the API


class TokenKind(StrEnum):
    KEY_CHANGE = "key_change"
    SET_TARIFF_RATE = "set_tariff_rate"
    CREDIT = "credit"


@dataclass(frozen=True)
class VendLimits:
    """Per-vend and per-day limits. Defaults suit a household: ₹50 to ₹50,000 a vend, ₹1,00,000 a day, five
    vends a day (a sixth in one day is more often a mistake or fraud than a need)."""

    minimum_paise: int = 5_000
    maximum_paise: int = 5_000_000
    daily_paise: int = 10_000_000
    daily_count: int = 5


DEFAULT_LIMITS = VendLimits()


@dataclass(frozen=True)
class VendRequest:
    channel: Channel
    amount_paise: int
    idempotency_key: str  # gateway payment id, CSC receipt, BBPS reference, or the API's Idempotency-Key
    consumer_number: str | None = None
    meter_serial: str | None = None
    source_party: str | None = None  # the CSC agent's id (its float account), where the channel has one
    payment_reference: str = ""  # the payer side's own reference, printed on the receipt

    def fingerprint(self) -> str:
        """What must match for a retry with the same key to be the same request."""
        body = {
            "channel": self.channel.value,
            "amount_paise": self.amount_paise,
            "consumer_number": self.consumer_number,
            "meter_serial": self.meter_serial,
            "source_party": self.source_party,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
