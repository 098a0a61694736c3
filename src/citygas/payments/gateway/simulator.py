"""A local gateway that behaves like Razorpay as far as citygas can tell: the same ids (`order_…`,
`pay_…`, `rfnd_…`), entity shapes, statuses and both signature schemes. The demo takes online and UPI
payments with it offline, and the tests drive every flow through it.

Its secrets are derived per tenant from the master key (HKDF), so each CGD's simulated merchant account
signs with its own key and webhook secret and nothing secret is stored. Its side of the world — the
gateway's orders, payments and refunds — lives in `gateway_sim_entity`.

Webhooks: when the payer pays, the simulator writes its payment and a `gateway_simulator.webhook`
outbox event in one transaction. The worker then delivers the signed body to the same use case the
HTTP webhook route calls (`tasks.deliver_simulated_webhook`), later and independently of the browser's
redirect — as a real gateway does — and retries it with back-off if it fails. It is delivered
in-process rather than over HTTP so the demo needs no reachable base URL.
"""

from __future__ import annotations

import json
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.payments.gateway.models import GatewaySimEntity
from citygas.payments.gateway.ports import (
    CURRENCY,
    GatewayError,
    GatewayOrderInfo,
    GatewayPaymentInfo,
    GatewayRefundInfo,
    MandateInfo,
    MandateRegistration,
    SignatureChecks,
    mandate_from_token,
    order_from_entity,
    payment_from_entity,
    payment_signature,
    refund_from_entity,
    webhook_signature,
)
from citygas.platform.outbox import emit
from citygas.platform.tenancy import current_tenant
from citygas.platform.time import utcnow

WEBHOOK_TOPIC = "gateway_simulator.webhook"
_BASE62 = string.digits + string.ascii_letters


def _entity_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_BASE62) for _ in range(14))


@dataclass(frozen=True)
class SimulatorSecrets:
    key_id: str
    key_secret: str
    webhook_secret: str


def simulator_secrets(master_key: bytes, tenant_id: uuid.UUID) -> SimulatorSecrets:
    """The simulated merchant account of one tenant: derived, never stored."""

    def derive(purpose: str) -> str:
        return (
            HKDF(
                algorithm=hashes.SHA256(),
                length=24,
                salt=None,
                info=f"citygas gateway simulator v1 {purpose} {tenant_id}".encode(),
            )
            .derive(master_key)
            .hex()
        )

    return SimulatorSecrets(
        key_id=f"rzp_test_sim{tenant_id.hex[:8]}", key_secret=derive("key"), webhook_secret=derive("webhook")
    )


@dataclass(frozen=True)
class SimulatedCheckout:
    """What the simulated checkout hands back to the payer's browser, as Razorpay's does."""

    order_id: str
    payment_id: str
    signature: str  # "" when the payment failed
    error_description: str = ""


class GatewaySimulator(SignatureChecks):
    name = "simulator"

    def __init__(self, session: Session, account: SimulatorSecrets) -> None:
        self.session = session
        self.key_id = account.key_id
        self.key_secret = account.key_secret
        self.webhook_secret = account.webhook_secret

    @classmethod
    def for_tenant(cls, session: Session, *, master_key: bytes) -> GatewaySimulator:
        return cls(session, simulator_secrets(master_key, current_tenant(session)))

    # --- the store -------------------------------------------------------------------------------------

    def _get(self, entity_id: str, kind: str) -> GatewaySimEntity:
        row = self.session.execute(
            select(GatewaySimEntity).where(
                GatewaySimEntity.entity_id == entity_id, GatewaySimEntity.kind == kind
            )
        ).scalar_one_or_none()
        if row is None:
            raise GatewayError(
                f"The id provided does not exist: no {kind} {entity_id}", gateway_code="BAD_REQUEST_ERROR"
            )
        return row

    def _put(self, kind: str, body: dict[str, Any]) -> None:
        self.session.add(GatewaySimEntity(entity_id=body["id"], kind=kind, body=body, created_at=utcnow()))
        self.session.flush()

    @staticmethod
    def _update(row: GatewaySimEntity, **changes: Any) -> dict[str, Any]:
        row.body = {**row.body, **changes}  # a new dict, so the JSON column sees the change
        return row.body

    def _now(self) -> int:
        return int(utcnow().timestamp())

    def _open_order(
        self, amount_paise: int, receipt: str, notes: dict[str, str], **extra: Any
    ) -> dict[str, Any]:
        """Store a new order entity in Razorpay's shape (plus `extra` fields: a mandate's token, a debit's
        pre-debit notification) and return it."""
        order: dict[str, Any] = {
            "id": _entity_id("order_"),
            "entity": "order",
            "amount": amount_paise,
            "amount_paid": 0,
            "amount_due": amount_paise,
            "currency": CURRENCY,
            "receipt": receipt,
            "status": "created",
            "attempts": 0,
            "notes": notes,
            "created_at": self._now(),
            **extra,
        }
        self._put("order", order)
        return order

    # --- the port --------------------------------------------------------------------------------------

    def create_order(self, *, amount_paise: int, receipt: str, notes: dict[str, str]) -> GatewayOrderInfo:
        if isinstance(amount_paise, bool) or not isinstance(amount_paise, int) or amount_paise < 100:
            raise GatewayError(
                "Order amount less than minimum amount allowed", gateway_code="BAD_REQUEST_ERROR"
            )
        return order_from_entity(self._open_order(amount_paise, receipt, notes))

    def fetch_order(self, order_id: str) -> GatewayOrderInfo:
        return order_from_entity(self._get(order_id, "order").body)

    def fetch_payment(self, payment_id: str) -> GatewayPaymentInfo:
        return payment_from_entity(self._get(payment_id, "payment").body)

    def capture_payment(self, payment_id: str, *, amount_paise: int) -> GatewayPaymentInfo:
        row = self._get(payment_id, "payment")
        if row.body["status"] != "authorized":
            raise GatewayError("This payment has already been captured", gateway_code="BAD_REQUEST_ERROR")
        if row.body["amount"] != amount_paise:
            raise GatewayError("Capture amount must be equal to the amount authorized")
        return payment_from_entity(self._update(row, status="captured", captured=True))

    def refund(
        self, payment_id: str, *, amount_paise: int, receipt: str, notes: dict[str, str]
    ) -> GatewayRefundInfo:
        row = self._get(payment_id, "payment")
        already = int(row.body.get("amount_refunded", 0))
        if row.body["status"] not in ("captured", "refunded") or amount_paise <= 0:
            raise GatewayError("The payment cannot be refunded", gateway_code="BAD_REQUEST_ERROR")
        if already + amount_paise > row.body["amount"]:
            raise GatewayError(
                "The refund amount provided is greater than amount captured", gateway_code="BAD_REQUEST_ERROR"
            )
        refund = {
            "id": _entity_id("rfnd_"),
            "entity": "refund",
            "amount": amount_paise,
            "currency": CURRENCY,
            "payment_id": payment_id,
            "notes": notes,
            "receipt": receipt,
            "status": "processed",
            "speed_processed": "normal",
            "created_at": self._now(),
        }
        self._put("refund", refund)
        refunded = already + amount_paise
        self._update(
            row,
            amount_refunded=refunded,
            refund_status="full" if refunded == row.body["amount"] else "partial",
            status="refunded" if refunded == row.body["amount"] else row.body["status"],
        )
        self._send_webhook(
            "refund.processed", {"refund": {"entity": refund}, "payment": {"entity": row.body}}
        )
        return refund_from_entity(refund)

    # --- the payer's side: what the checkout page does ---------------------------------------------------

    def pay(self, order_id: str, *, method: str, vpa: str = "", succeed: bool = True) -> SimulatedCheckout:
        """The payer completes (or fails) the checkout of an order. A successful payment is captured at
        once (Razorpay's automatic capture) and a signed `payment.captured` webhook is queued."""
        if method not in ("card", "upi"):
            raise GatewayError("the simulator takes card or upi")
        order = self._get(order_id, "order")
        if order.body["status"] == "paid":
            raise GatewayError("Order has already been paid", gateway_code="BAD_REQUEST_ERROR")
        payment: dict[str, Any] = {
            "id": _entity_id("pay_"),
            "entity": "payment",
            "amount": order.body["amount"],
            "currency": CURRENCY,
            "status": "captured" if succeed else "failed",
            "order_id": order_id,
            "method": method,
            "amount_refunded": 0,
            "refund_status": None,
            "captured": succeed,
            "description": "Gas top-up",
            "card_id": "card_" + _entity_id("")[:14] if method == "card" else None,
            "vpa": (vpa or "payer@upi") if method == "upi" else None,
            "fee": order.body["amount"] * 2 // 100 if succeed else None,  # 2 %: what a settlement deducts
            "error_code": None if succeed else "BAD_REQUEST_ERROR",
            "error_description": None if succeed else "Payment failed: the payer declined it",
            "created_at": self._now(),
        }
        self._put("payment", payment)
        self._update(
            order,
            attempts=int(order.body["attempts"]) + 1,
            status="paid" if succeed else "attempted",
            amount_paid=order.body["amount"] if succeed else 0,
            amount_due=0 if succeed else order.body["amount"],
        )
        if not succeed:
            self._send_webhook("payment.failed", {"payment": {"entity": payment}})
            return SimulatedCheckout(order_id, payment["id"], "", str(payment["error_description"]))
        self._send_webhook("payment.captured", {"payment": {"entity": payment}})
        signature = payment_signature(self.key_secret, order_id=order_id, payment_id=payment["id"])
        return SimulatedCheckout(order_id, payment["id"], signature)

    def signed_webhook(self, event: str, payload: dict[str, Any]) -> tuple[bytes, str, str]:
        """A webhook body as the gateway would send it: (raw body, X-Razorpay-Signature, event id)."""
        body = json.dumps(
            {
                "entity": "event",
                "account_id": "acc_" + self.key_id[-14:],
                "event": event,
                "contains": sorted(payload),
                "payload": payload,
                "created_at": self._now(),
            },
            separators=(",", ":"),
        ).encode()
        return body, webhook_signature(self.webhook_secret, body), _entity_id("evt_")

    def _send_webhook(self, event: str, payload: dict[str, Any]) -> None:
        body, signature, event_id = self.signed_webhook(event, payload)
        emit(
            self.session,
            WEBHOOK_TOPIC,
            {"body": body.decode(), "signature": signature, "event_id": event_id, "event": event},
        )

    # --- UPI AutoPay mandates ------------------------------------------------------------------------------

    MANDATE_AUTHORISATION_PAISE = 100  # Razorpay's UPI authorisation payment is ₹1

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
        if (
            isinstance(max_amount_paise, bool)
            or not isinstance(max_amount_paise, int)
            or max_amount_paise < 100
        ):
            raise GatewayError(
                "The max amount must be a whole number of paise", gateway_code="BAD_REQUEST_ERROR"
            )
        customer: dict[str, Any] = {
            "id": _entity_id("cust_"),
            "entity": "customer",
            "name": name,
            "contact": contact,
            "email": email,
            "created_at": self._now(),
        }
        self._put("customer", customer)
        order = self._open_order(
            self.MANDATE_AUTHORISATION_PAISE,
            receipt,
            notes,
            method="upi",
            customer_id=customer["id"],
            token={
                "max_amount": max_amount_paise,
                "expire_at": int(expire_at.timestamp()),
                "frequency": "as_presented",
            },
            payment_ids=[],
        )
        return MandateRegistration(customer["id"], order["id"], self.MANDATE_AUTHORISATION_PAISE)

    def fetch_mandate(self, *, customer_id: str, payment_id: str) -> MandateInfo:
        payment = self._get(payment_id, "payment").body
        token_id = payment.get("token_id")
        if not token_id:
            raise GatewayError("The payment did not register a mandate", gateway_code="BAD_REQUEST_ERROR")
        token = self._get(str(token_id), "token").body
        if token.get("customer_id") != customer_id:
            raise GatewayError("The token does not belong to this customer", gateway_code="BAD_REQUEST_ERROR")
        return mandate_from_token(token, payment_id=payment_id)

    def order_payments(self, order_id: str) -> list[GatewayPaymentInfo]:
        order = self._get(order_id, "order").body
        return [payment_from_entity(self._get(pid, "payment").body) for pid in order.get("payment_ids", [])]

    def notify_mandate_debit(
        self, *, token_id: str, amount_paise: int, debit_after: datetime, receipt: str, notes: dict[str, str]
    ) -> GatewayOrderInfo:
        token = self._get(token_id, "token").body
        if token["recurring_details"]["status"] != "confirmed":
            raise GatewayError("The token is not active", gateway_code="BAD_REQUEST_ERROR")
        if amount_paise > int(token["max_amount"]):
            raise GatewayError(
                "Amount exceeds the mandate's maximum amount", gateway_code="BAD_REQUEST_ERROR"
            )
        order = self._open_order(
            amount_paise,
            receipt,
            notes,
            payment_capture=True,
            notification={"token_id": token_id, "payment_after": int(debit_after.timestamp())},
            payment_ids=[],
        )
        return order_from_entity(order)

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
        """A recurring debit. Like the real thing: refused before the notice window has passed, refused on
        a paid order (one successful payment per order), and failed when told to fail the next debit."""
        token_row = self._get(token_id, "token")
        order_row = self._get(order_id, "order")
        token, order = token_row.body, order_row.body
        if token.get("customer_id") != customer_id:
            raise GatewayError("The token does not belong to this customer", gateway_code="BAD_REQUEST_ERROR")
        if order["status"] == "paid":
            raise GatewayError("Order has already been paid", gateway_code="BAD_REQUEST_ERROR")
        notification = order.get("notification") or {}
        if notification.get("token_id") != token_id or amount_paise != order["amount"]:
            raise GatewayError("The order is not a debit of this token", gateway_code="BAD_REQUEST_ERROR")
        if self._now() < int(notification.get("payment_after", 0)):
            raise GatewayError(
                "The pre-debit notification window has not passed", gateway_code="BAD_REQUEST_ERROR"
            )
        failure = ""
        if token["recurring_details"]["status"] != "confirmed":
            failure = "The mandate is not active at the payer's bank"
        elif token.get("fail_next"):
            failure = str(token["fail_next"])
            self._update(token_row, fail_next=None)
        payment: dict[str, Any] = {
            "id": _entity_id("pay_"),
            "entity": "payment",
            "amount": amount_paise,
            "currency": CURRENCY,
            "status": "failed" if failure else "captured",
            "order_id": order_id,
            "method": "upi",
            "recurring": True,
            "token_id": token_id,
            "customer_id": customer_id,
            "amount_refunded": 0,
            "refund_status": None,
            "captured": not failure,
            "description": description,
            "vpa": self._vpa_text(token),
            "contact": contact,
            "email": email,
            "notes": notes,
            "fee": None if failure else amount_paise * 2 // 100,
            "error_code": "BAD_REQUEST_ERROR" if failure else None,
            "error_description": failure or None,
            "created_at": self._now(),
        }
        self._put("payment", payment)
        self._update(
            order_row,
            attempts=int(order["attempts"]) + 1,
            status="attempted" if failure else "paid",
            amount_paid=0 if failure else amount_paise,
            amount_due=amount_paise if failure else 0,
            payment_ids=[*order.get("payment_ids", []), payment["id"]],
        )
        event = "payment.failed" if failure else "payment.captured"
        self._send_webhook(event, {"payment": {"entity": payment}})
        return payment_from_entity(payment)

    def cancel_mandate(self, *, customer_id: str, token_id: str) -> None:
        row = self._get(token_id, "token")
        if row.body.get("customer_id") != customer_id:
            raise GatewayError("The token does not belong to this customer", gateway_code="BAD_REQUEST_ERROR")
        details = {**row.body["recurring_details"], "status": "cancelled"}
        self._update(row, recurring_details=details, deleted_at=self._now())
        self._send_webhook("token.cancelled", {"token": {"entity": row.body}})

    # --- the payer's side: the UPI app approving the mandate; the demo's controls ---------------------

    @staticmethod
    def _vpa_text(token: dict[str, Any]) -> str:
        vpa = token.get("vpa") or {}
        return f"{vpa.get('username', '')}@{vpa.get('handle', '')}" if vpa else ""

    def mandate_order(self, order_id: str) -> dict[str, Any]:
        """The authorisation order as the simulated UPI app shows it (amount, maximum, expiry)."""
        order = self._get(order_id, "order").body
        if not isinstance(order.get("token"), dict):
            raise GatewayError("This order does not register a mandate", gateway_code="BAD_REQUEST_ERROR")
        return order

    def approve_mandate(self, order_id: str, *, vpa: str, approve: bool = True) -> SimulatedCheckout:
        """The payer approves (with the UPI PIN, in the UPI app) or declines the mandate. An approval pays
        the ₹1 authorisation and leaves a confirmed token; a signature goes back to the browser as after a
        checkout."""
        order_row = self._get(order_id, "order")
        order = self.mandate_order(order_id)
        if order["status"] == "paid":
            raise GatewayError("This mandate has already been approved", gateway_code="BAD_REQUEST_ERROR")
        username, _, handle = (vpa or "payer@upi").partition("@")
        token = {
            "id": _entity_id("token_"),
            "entity": "token",
            "method": "upi",
            "recurring": True,
            "recurring_details": {
                "status": "confirmed" if approve else "rejected",
                "failure_reason": None if approve else "The payer declined the mandate",
            },
            "customer_id": order["customer_id"],
            "order_id": order_id,
            "max_amount": order["token"]["max_amount"],
            "expired_at": order["token"]["expire_at"],
            "frequency": order["token"]["frequency"],
            "vpa": {"username": username, "handle": handle or "upi"},
            "fail_next": None,
            "created_at": self._now(),
        }
        self._put("token", token)
        payment: dict[str, Any] = {
            "id": _entity_id("pay_"),
            "entity": "payment",
            "amount": order["amount"],
            "currency": CURRENCY,
            "status": "captured" if approve else "failed",
            "order_id": order_id,
            "method": "upi",
            "recurring": True,
            "token_id": token["id"],
            "customer_id": order["customer_id"],
            "amount_refunded": 0,
            "captured": approve,
            "description": "UPI AutoPay mandate authorisation",
            "vpa": self._vpa_text(token),
            "error_code": None if approve else "BAD_REQUEST_ERROR",
            "error_description": None if approve else "The payer declined the mandate",
            "created_at": self._now(),
        }
        self._put("payment", payment)
        self._update(
            order_row,
            attempts=int(order["attempts"]) + 1,
            status="paid" if approve else "attempted",
            payment_ids=[*order.get("payment_ids", []), payment["id"]],
        )
        self._send_webhook("token.confirmed" if approve else "token.rejected", {"token": {"entity": token}})
        if not approve:
            return SimulatedCheckout(order_id, payment["id"], "", "The payer declined the mandate")
        signature = payment_signature(self.key_secret, order_id=order_id, payment_id=payment["id"])
        return SimulatedCheckout(order_id, payment["id"], signature)

    def fail_next_debit(self, token_id: str, *, reason: str) -> None:
        """Demo and tests: the payer's bank will decline this token's next debit with `reason`."""
        row = self._get(token_id, "token")
        self._update(row, fail_next=reason.strip()[:120] or "Insufficient funds in the payer's account")
