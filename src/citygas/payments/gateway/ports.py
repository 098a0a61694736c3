"""The payment gateway port: what citygas asks of an online gateway, in Razorpay's terms and data shapes.

Two adapters implement it: `RazorpayGateway` (the `razorpay` SDK, for production) and `GatewaySimulator`
(local, offline, the same ids, shapes and signature scheme, for the demo and the tests).

Both signatures are HMAC-SHA256 in lowercase hex, checked here, in constant time, by citygas itself and
never by an SDK, so the check is the same whichever adapter runs:
- checkout: `HMAC(key_secret, "<order_id>|<payment_id>")`, sent back by the payer's browser;
- webhook: `HMAC(webhook_secret, raw request body)` in `X-Razorpay-Signature`. It is computed over the
  bytes as they arrived: parsing and re-serialising the JSON first would change them and break the check.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from citygas.platform.errors import DomainError

CURRENCY = "INR"


class GatewayError(DomainError):
    """The gateway refused or failed a call; nothing of ours was written."""

    code = "gateway_error"
    status = 502
    title = "The payment gateway did not complete the request"


class MalformedGatewayData(DomainError):
    code = "bad_payload"
    status = 400
    title = "The gateway's data is not in the expected shape"


@dataclass(frozen=True)
class GatewayOrderInfo:
    id: str
    amount_paise: int
    currency: str
    receipt: str
    status: str  # created | attempted | paid


@dataclass(frozen=True)
class GatewayPaymentInfo:
    id: str
    order_id: str
    amount_paise: int
    currency: str
    status: str  # created | authorized | captured | refunded | failed
    method: str  # card | upi | netbanking | wallet | emi
    vpa: str = ""  # the payer's UPI id, for a UPI payment
    amount_refunded_paise: int = 0
    error_description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class GatewayRefundInfo:
    id: str
    payment_id: str
    amount_paise: int
    status: str  # pending | processed | failed
    receipt: str = ""


class PaymentGateway(Protocol):
    """One merchant account of one tenant (CGD) at one gateway."""

    name: str  # "razorpay" | "simulator"
    key_id: str  # public: the checkout page shows it

    def create_order(self, *, amount_paise: int, receipt: str, notes: dict[str, str]) -> GatewayOrderInfo: ...

    def verify_payment_signature(self, *, order_id: str, payment_id: str, signature: str) -> bool: ...

    def verify_webhook_signature(self, *, body: bytes, signature: str) -> bool: ...

    def fetch_payment(self, payment_id: str) -> GatewayPaymentInfo: ...

    def capture_payment(self, payment_id: str, *, amount_paise: int) -> GatewayPaymentInfo: ...

    def refund(
        self, payment_id: str, *, amount_paise: int, receipt: str, notes: dict[str, str]
    ) -> GatewayRefundInfo: ...


# --- UPI AutoPay mandates (recurring payments) ------------------------------------------------------------
#
# Razorpay's shape of a UPI AutoPay mandate: a gateway customer; an authorisation order with `method=upi`
# and a `token` (`max_amount`, `expire_at`, `frequency=as_presented`) that the payer approves in the UPI
# app; the approval leaves a token id. Each debit is a new order carrying a pre-debit `notification`
# (`token_id`, `payment_after`), then a recurring payment on that order with the token. An order takes one
# successful payment, which is what makes a retried debit safe: ask the order for its payments first.


@dataclass(frozen=True)
class MandateRegistration:
    customer_id: str  # the gateway's customer (cust_…)
    order_id: str  # the authorisation order the payer approves (order_…)
    amount_paise: int  # the authorisation payment's own amount (₹1 on Razorpay UPI)


@dataclass(frozen=True)
class MandateInfo:
    token_id: str
    status: str  # initiated | confirmed | rejected | cancelled | paused (the token's recurring status)
    vpa: str
    max_amount_paise: int
    authorisation_payment_id: str
    failure_reason: str = ""


class MandateGateway(PaymentGateway, Protocol):
    """A gateway that also takes UPI AutoPay mandates. Additive: the top-up port above is unchanged."""

    def create_mandate_registration(
        self,
        *,
        name: str,
        contact: str,
        email: str,
        max_amount_paise: int,
        expire_at: datetime,
        receipt: str,
        notes: dict[str, str],
    ) -> MandateRegistration: ...

    def fetch_mandate(self, *, customer_id: str, payment_id: str) -> MandateInfo: ...

    def order_payments(self, order_id: str) -> list[GatewayPaymentInfo]: ...

    def notify_mandate_debit(
        self, *, token_id: str, amount_paise: int, debit_after: datetime, receipt: str, notes: dict[str, str]
    ) -> GatewayOrderInfo: ...

    def charge_mandate(
        self,
        *,
        customer_id: str,
        token_id: str,
        order_id: str,
        amount_paise: int,
        contact: str,
        email: str,
        description: str,
        notes: dict[str, str],
    ) -> GatewayPaymentInfo: ...

    def cancel_mandate(self, *, customer_id: str, token_id: str) -> None: ...


def mandate_from_token(token: dict[str, Any], *, payment_id: str) -> MandateInfo:
    """A Razorpay token entity (`GET /customers/:id/tokens/:token_id`) as a mandate."""
    if not _str(token, "id"):
        raise MalformedGatewayData("the token has no id")
    details = token.get("recurring_details")
    details = details if isinstance(details, dict) else {}
    vpa = token.get("vpa")
    if isinstance(vpa, dict):  # {"username": "asha", "handle": "upi"} on Razorpay
        handle = f"{vpa.get('username') or ''}@{vpa.get('handle') or ''}"
        vpa_text = handle if handle != "@" else ""
    else:
        vpa_text = vpa if isinstance(vpa, str) else ""
    return MandateInfo(
        token_id=_str(token, "id"),
        status=str(details.get("status") or ""),
        vpa=vpa_text,
        max_amount_paise=_int(token, "max_amount"),
        authorisation_payment_id=payment_id,
        failure_reason=str(details.get("failure_reason") or ""),
    )


# --- signatures ----------------------------------------------------------------------------------------


def payment_signature(key_secret: str, *, order_id: str, payment_id: str) -> str:
    message = f"{order_id}|{payment_id}".encode()
    return hmac.new(key_secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_signature(webhook_secret: str, body: bytes) -> str:
    return hmac.new(webhook_secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(expected: str, given: str) -> bool:
    # compare_digest: the time taken must not tell a forger how many leading characters were right.
    return bool(given) and hmac.compare_digest(expected.encode(), given.strip().lower().encode())


class SignatureChecks:
    """The two checks, shared by both adapters."""

    key_secret: str
    webhook_secret: str

    def verify_payment_signature(self, *, order_id: str, payment_id: str, signature: str) -> bool:
        expected = payment_signature(self.key_secret, order_id=order_id, payment_id=payment_id)
        return signature_matches(expected, signature)

    def verify_webhook_signature(self, *, body: bytes, signature: str) -> bool:
        return signature_matches(webhook_signature(self.webhook_secret, body), signature)


# --- Razorpay entity shapes ------------------------------------------------------------------------------


def _int(entity: dict[str, Any], key: str) -> int:
    value = entity.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedGatewayData(f"{key} is not a whole number of paise")
    return value


def _str(entity: dict[str, Any], key: str) -> str:
    value = entity.get(key)
    return value if isinstance(value, str) else ""


def order_from_entity(entity: dict[str, Any]) -> GatewayOrderInfo:
    if not _str(entity, "id"):
        raise MalformedGatewayData("the order has no id")
    return GatewayOrderInfo(
        id=_str(entity, "id"),
        amount_paise=_int(entity, "amount"),
        currency=_str(entity, "currency"),
        receipt=_str(entity, "receipt"),
        status=_str(entity, "status"),
    )


def payment_from_entity(entity: dict[str, Any]) -> GatewayPaymentInfo:
    if not _str(entity, "id"):
        raise MalformedGatewayData("the payment has no id")
    return GatewayPaymentInfo(
        id=_str(entity, "id"),
        order_id=_str(entity, "order_id"),
        amount_paise=_int(entity, "amount"),
        currency=_str(entity, "currency"),
        status=_str(entity, "status"),
        method=_str(entity, "method"),
        vpa=_str(entity, "vpa"),
        amount_refunded_paise=_int(entity, "amount_refunded"),
        error_description=_str(entity, "error_description"),
        raw=entity,
    )


def refund_from_entity(entity: dict[str, Any]) -> GatewayRefundInfo:
    if not _str(entity, "id") or not _str(entity, "payment_id"):
        raise MalformedGatewayData("the refund has no id or payment id")
    return GatewayRefundInfo(
        id=_str(entity, "id"),
        payment_id=_str(entity, "payment_id"),
        amount_paise=_int(entity, "amount"),
        status=_str(entity, "status"),
        receipt=_str(entity, "receipt"),
    )
