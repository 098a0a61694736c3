"""The production adapter: Razorpay through its official SDK (`pip install razorpay`).

The SDK is imported on first use, so citygas runs — and its tests run, with no network — without it.
Signatures are checked by `SignatureChecks` (citygas's own constant-time HMAC), not by the SDK.
"""

from __future__ import annotations

import importlib
from typing import Any

from citygas.payments.gateway.ports import (
    CURRENCY,
    GatewayError,
    GatewayOrderInfo,
    GatewayPaymentInfo,
    GatewayRefundInfo,
    SignatureChecks,
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
