"""The production adapter: Razorpay through its official SDK (`pip install razorpay`).

The SDK is imported on first use, so citygas runs — and its tests run, with no network — without it.
Signatures are checked by `SignatureChecks` (citygas's own constant-time HMAC), not by the SDK.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

from citygas.payments.gateway.ports import (
    CURRENCY,
    GatewayError,
    GatewayOrderInfo,
    GatewayPaymentInfo,
    GatewayRefundInfo,
    MalformedGatewayData,
    MandateInfo,
    MandateRegistration,
    SignatureChecks,
    mandate_from_token,
    order_from_entity,
    payment_from_entity,
    refund_from_entity,
)


class RazorpayGateway(SignatureChecks):
    name = "razorpay"

    def __init__(
        self, *, key_id: str, key_secret: str, webhook_secret: str, timeout_seconds: float = 10.0
    ) -> None:
        self.key_id = key_id
        self.key_secret = key_secret
        self.webhook_secret = webhook_secret
        self.timeout_seconds = timeout_seconds
        self._client: Any = None

    def __repr__(self) -> str:  # never the secrets, not even in a traceback
        return f"RazorpayGateway(key_id={self.key_id!r})"

    def _sdk(self) -> Any:
        if self._client is None:
            try:
                razorpay = importlib.import_module("razorpay")
            except ImportError as exc:
                raise GatewayError("the razorpay package is not installed: pip install razorpay") from exc
            client = razorpay.Client(auth=(self.key_id, self.key_secret))
            client.set_app_details({"title": "citygas", "version": "1"})
            self._client = client
        return self._client

    def _call(self, fn: Any, *args: Any) -> dict[str, Any]:
        errors = importlib.import_module("razorpay.errors")
        try:
            result = fn(*args, timeout=self.timeout_seconds)
        except (errors.BadRequestError, errors.GatewayError, errors.ServerError) as exc:
            raise GatewayError(f"Razorpay: {exc}", gateway_code=type(exc).__name__) from exc
        except OSError as exc:  # network failure: nothing happened on our side
            raise GatewayError(f"Razorpay could not be reached: {exc}") from exc
        if not isinstance(result, dict):
            raise GatewayError("Razorpay answered in an unexpected shape")
        return result

    def create_order(self, *, amount_paise: int, receipt: str, notes: dict[str, str]) -> GatewayOrderInfo:
        data = {
            "amount": amount_paise,
            "currency": CURRENCY,
            "receipt": receipt[:40],
            "notes": notes,
            "payment_capture": 1,  # capture automatically: a prepaid top-up is fulfilled at once
        }
        return order_from_entity(self._call(self._sdk().order.create, data))

    def fetch_payment(self, payment_id: str) -> GatewayPaymentInfo:
        return payment_from_entity(self._call(self._sdk().payment.fetch, payment_id))

    def capture_payment(self, payment_id: str, *, amount_paise: int) -> GatewayPaymentInfo:
        sdk = self._sdk()
        return payment_from_entity(
            self._call(sdk.payment.capture, payment_id, amount_paise, {"currency": CURRENCY})
        )

    def refund(
        self, payment_id: str, *, amount_paise: int, receipt: str, notes: dict[str, str]
    ) -> GatewayRefundInfo:
        data = {"amount": amount_paise, "receipt": receipt[:40], "notes": notes, "speed": "normal"}
        return refund_from_entity(self._call(self._sdk().payment.refund, payment_id, data))

    # --- UPI AutoPay mandates (Razorpay Recurring Payments, UPI) ------------------------------------------

    AUTHORISATION_PAISE = 100  # the UPI authorisation payment: ₹1, Razorpay's minimum

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
    ) -> MandateRegistration:
        """A customer (`fail_existing: "0"` returns the existing one for the same contact) and the
        authorisation order with the mandate's token terms; the payer approves it at Razorpay Checkout
        (`recurring: 1`), which leaves the token id on the authorisation payment."""
        sdk = self._sdk()
        customer_body: dict[str, Any] = {"name": name[:50], "contact": contact, "fail_existing": "0"}
        if email:
            customer_body["email"] = email
        customer = self._call(sdk.customer.create, customer_body)
        customer_id = customer.get("id")
        if not isinstance(customer_id, str) or not customer_id:
            raise MalformedGatewayData("Razorpay returned a customer without an id")
        order = order_from_entity(
            self._call(
                sdk.order.create,
                {
                    "amount": self.AUTHORISATION_PAISE,
                    "currency": CURRENCY,
                    "customer_id": customer_id,
                    "method": "upi",
                    "payment_capture": 1,
                    "receipt": receipt[:40],
                    "notes": notes,
                    "token": {
                        "max_amount": max_amount_paise,
                        "expire_at": int(expire_at.timestamp()),
                        "frequency": "as_presented",
                    },
                },
            )
        )
        return MandateRegistration(customer_id, order.id, order.amount_paise)

    def fetch_mandate(self, *, customer_id: str, payment_id: str) -> MandateInfo:
        sdk = self._sdk()
        payment = self._call(sdk.payment.fetch, payment_id)
        token_id = payment.get("token_id")
        if not isinstance(token_id, str) or not token_id:
            raise GatewayError("Razorpay: the payment did not register a mandate")
        return mandate_from_token(self._call(sdk.token.fetch, customer_id, token_id), payment_id=payment_id)

    def order_payments(self, order_id: str) -> list[GatewayPaymentInfo]:
        collection = self._call(self._sdk().order.payments, order_id)
        items = collection.get("items")
        if not isinstance(items, list):
            raise MalformedGatewayData("Razorpay returned an order's payments without items")
        return [payment_from_entity(item) for item in items if isinstance(item, dict)]

    def notify_mandate_debit(
        self, *, token_id: str, amount_paise: int, debit_after: datetime, receipt: str, notes: dict[str, str]
    ) -> GatewayOrderInfo:
        """The debit's order with a `notification` object: Razorpay has the pre-debit notification sent
        and the debit may be made after `payment_after` (which citygas sets at least 24 hours ahead)."""
        data = {
            "amount": amount_paise,
            "currency": CURRENCY,
            "payment_capture": 1,
            "receipt": receipt[:40],
            "notes": notes,
            "notification": {"token_id": token_id, "payment_after": int(debit_after.timestamp())},
        }
        return order_from_entity(self._call(self._sdk().order.create, data))

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
    ) -> GatewayPaymentInfo:
        sdk = self._sdk()
        data: dict[str, Any] = {
            "amount": amount_paise,
            "currency": CURRENCY,
            "order_id": order_id,
            "customer_id": customer_id,
            "token": token_id,
            "recurring": "1",
            "contact": contact,
            "description": description[:255],
            "notes": notes,
        }
        if email:
            data["email"] = email
        created = self._call(sdk.payment.createRecurring, data)
        payment_id = created.get("razorpay_payment_id")
        if not isinstance(payment_id, str) or not payment_id:
            raise MalformedGatewayData("Razorpay returned a recurring payment without its id")
        # A UPI debit settles asynchronously: the payment is usually `created` now and captured or failed
        # later (webhook, or the next fetch by the auto top-up job).
        return payment_from_entity(self._call(sdk.payment.fetch, payment_id))

    def cancel_mandate(self, *, customer_id: str, token_id: str) -> None:
        self._call(self._sdk().token.delete, customer_id, token_id)
