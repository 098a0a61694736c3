"""Pure rules of the BBPS biller channel: the fields we accept, how a name is masked, how long a fetched
bill stays payable. No database, no web.

The BBPS (Bharat Bill Payment System) biller specification is published by NPCI Bharat BillPay to its
participants only; it is not public here. The field names below follow the public descriptions of BBPS
(bill fetch, payment with the BBPS transaction reference, agent id, payment channel and mode, customer
mobile) and are mapped onto them by the BBPS operating unit's integration; see
docs/payments-bbps-and-settlement.md.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

# A fetched prepaid "bill" has no due amount; its reference stays payable for a day, long enough for an
# agent's counter or an app session, short enough that stale limits are not quoted for ever.
FETCH_VALID_FOR = timedelta(hours=24)


class PaymentChannel(StrEnum):
    """Where the payer paid, as BBPS reports it (its initiating channels)."""

    AGENT = "AGT"  # a BBPS agent outlet (cash at a counter)
    BRANCH = "BNKBRNCH"
    INTERNET = "INT"  # internet banking
    INTERNET_BANKING = "INTB"
    MOBILE = "MOB"  # a bank's or wallet's mobile app
    MOBILE_BANKING = "MOBB"
    POS = "POS"
    ATM = "ATM"
    KIOSK = "KIOSK"
    BSC = "BSC"  # business service centre
    UPI = "UPI"


class PaymentMode(StrEnum):
    """How the payer paid, as BBPS reports it."""

    CASH = "Cash"
    UPI = "UPI"
    DEBIT_CARD = "Debit Card"
    CREDIT_CARD = "Credit Card"
    PREPAID_CARD = "Prepaid Card"
    INTERNET_BANKING = "Internet Banking"
    IMPS = "IMPS"
    NEFT = "NEFT"
    WALLET = "Wallet"
    ACCOUNT_TRANSFER = "Account Transfer"


def mask_name(name: str) -> str:
    """The payer sees enough to recognise the account, not the full name: "Asha Rao" → "A*** R**".
    Each word keeps its first letter; a one-letter word (an initial) stays as it is."""
    return " ".join(word[0] + "*" * (len(word) - 1) for word in name.split())


def bbps_idempotency_key(bbps_txn_ref: str) -> str:
    """The vend's idempotency key for a BBPS payment: one BBPS transaction, one vend, for ever."""
    return f"bbps:{bbps_txn_ref}"
