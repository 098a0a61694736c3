"""The online gateway channel through the simulator: order → checkout → callback or webhook → vend,
exactly once; forged and replayed webhooks; refunds under the honest rule."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from citygas.ledger.models import JournalEntry
from citygas.ledger.rules import AccountCode
from citygas.ledger.service import get_balance
from citygas.meters.service import do_meter_transition, get_meter
from citygas.payments.gateway import service
from citygas.payments.gateway.models import (
    GatewayAccount,
    GatewayOrder,
    GatewayPayment,
    GatewayWebhookDelivery,
)
from citygas.payments.gateway.ports import webhook_signature
from citygas.payments.gateway.razorpay_adapter import RazorpayGateway
from citygas.payments.gateway.service import (
    AmountMismatch,
    BadSignature,
    PaymentRefused,
    Settlement,
    UnknownOrder,
    do_configure_gateway_account,
    do_confirm_checkout,
    do_create_order,
    do_receive_webhook,
    do_refund_payment,
    gateway_for,
)
from citygas.payments.gateway.simulator import WEBHOOK_TOPIC, GatewaySimulator, SimulatedCheckout
from citygas.platform.outbox import OutboxEvent
from citygas.platform.uow import Database
from citygas.sts import AcceptOutcome
from citygas.vending.models import Vend
from tests.meters.test_registry import MASTER
from tests.vending.conftest import Shop, simulated_meter
from tests.web.db_snapshot import differences, snapshot

CONSUMER = "ALP-C-00000001"


# --- helpers: the payer, the gateway and the webhook as the tests drive them ---------------------------


def create_order(db: Database, shop: Shop, amount_paise: int = 50_000) -> str:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        gateway = GatewaySimulator.for_tenant(uow.session, master_key=MASTER)
        order = do_create_order(uow.session, gateway, consumer_number=CONSUMER, amount_paise=amount_paise)
        uow.commit()
        return order.gateway_order_id


def pay(
    db: Database, shop: Shop, order_id: str, *, method: str = "card", succeed: bool = True
) -> SimulatedCheckout:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        paid = GatewaySimulator.for_tenant(uow.session, master_key=MASTER).pay(
            order_id, method=method, vpa="asha@upi", succeed=succeed
        )
        uow.commit()
        return paid


def confirm(db: Database, shop: Shop, paid: SimulatedCheckout, *, signature: str | None = None) -> Settlement:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        settled = do_confirm_checkout(
            uow.session,
            GatewaySimulator.for_tenant(uow.session, master_key=MASTER),
            order_id=paid.order_id,
            payment_id=paid.payment_id,
            signature=paid.signature if signature is None else signature,
            master_key=MASTER,
        )
        uow.commit()
        return settled


def queued_webhooks(db: Database, event: str | None = None) -> list[dict[str, Any]]:
    """The signed webhooks the simulator has queued for delivery, oldest first."""
    with db.system(read_only=True) as uow:
        rows = uow.session.execute(
            select(OutboxEvent).where(OutboxEvent.topic == WEBHOOK_TOPIC).order_by(OutboxEvent.id)
        ).scalars()
        return [r.payload for r in rows if event is None or r.payload["event"] == event]


def deliver(
    db: Database, shop: Shop, body: bytes, signature: str, event_id: str = ""
) -> service.WebhookOutcome:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        outcome = do_receive_webhook(
            uow.session,
            GatewaySimulator.for_tenant(uow.session, master_key=MASTER),
            body=body,
            signature=signature,
            event_id=event_id,
            master_key=MASTER,
        )
        uow.commit()
        return outcome


def deliver_queued(db: Database, shop: Shop, hook: dict[str, Any]) -> service.WebhookOutcome:
    return deliver(db, shop, hook["body"].encode(), hook["signature"], hook["event_id"])


def signed(db: Database, shop: Shop, event: str, payload: dict[str, Any]) -> tuple[bytes, str, str]:
    with db.unit_of_work(tenant=shop.tenant.id, read_only=True) as uow:
        return GatewaySimulator.for_tenant(uow.session, master_key=MASTER).signed_webhook(event, payload)


def count(db: Database, shop: Shop, model: Any) -> int:
    with db.unit_of_work(tenant=shop.tenant.id, read_only=True) as uow:
        return int(uow.session.execute(select(func.count()).select_from(model)).scalar_one())


def balance(db: Database, shop: Shop, code: AccountCode, party: Any = None) -> int:
    with db.unit_of_work(tenant=shop.tenant.id, read_only=True) as uow:
        return get_balance(uow.session, code, party)


def customer_id(db: Database, shop: Shop) -> Any:
    with db.unit_of_work(tenant=shop.tenant.id, read_only=True) as uow:
        return get_meter(uow.session, shop.serial).customer_id


# --- checkout callback ---------------------------------------------------------------------------------


def test_a_card_payment_verified_at_the_callback_vends_once_into_gateway_clearing(
    db: Database, gateway_shop: Shop
) -> None:
    order_id = create_order(db, gateway_shop)
    paid = pay(db, gateway_shop, order_id)

    settled = confirm(db, gateway_shop, paid)

    assert settled.vend is not None
    assert (settled.replayed, settled.payment.status, settled.payment.confirmed_by) == (
        False,
        "captured",
        "callback",
    )
    assert (settled.vend.channel, settled.vend.amount_paise, settled.vend.gas_credit_paise) == (
        "online",
        50_000,
        48_550,
    )
    assert settled.vend.idempotency_key == f"rzp:{paid.payment_id}"
    assert settled.order.status == "paid"
    assert balance(db, gateway_shop, AccountCode.GATEWAY_CLEARING) == 50_000
    assert (count(db, gateway_shop, Vend), count(db, gateway_shop, JournalEntry)) == (1, 1)


def test_upi_is_a_method_of_the_same_gateway_and_vends_on_the_upi_channel(
    db: Database, gateway_shop: Shop
) -> None:
    paid = pay(db, gateway_shop, create_order(db, gateway_shop), method="upi")

    settled = confirm(db, gateway_shop, paid)

    assert settled.vend is not None
    assert (settled.vend.channel, settled.payment.method, settled.payment.vpa) == ("upi", "upi", "asha@upi")
    assert balance(db, gateway_shop, AccountCode.GATEWAY_CLEARING) == 50_000


def test_a_forged_checkout_signature_is_refused_and_changes_nothing(db: Database, gateway_shop: Shop) -> None:
    paid = pay(db, gateway_shop, create_order(db, gateway_shop))
    before = snapshot(db)

    with pytest.raises(BadSignature) as refused:
        confirm(db, gateway_shop, paid, signature="0" * 64)

    assert refused.value.code == "bad_signature"
    assert differences(before, snapshot(db)) == {}


def test_a_callback_for_an_unknown_order_is_refused_and_changes_nothing(
    db: Database, gateway_shop: Shop
) -> None:
    create_order(db, gateway_shop)
    with db.unit_of_work(tenant=gateway_shop.tenant.id, read_only=True) as uow:
        secret = GatewaySimulator.for_tenant(uow.session, master_key=MASTER).key_secret
    from citygas.payments.gateway.ports import payment_signature

    ghost = SimulatedCheckout("order_NoSuchOrder000", "pay_NoSuchPayment00", "")
    signature = payment_signature(secret, order_id=ghost.order_id, payment_id=ghost.payment_id)
    before = snapshot(db)

    with pytest.raises(UnknownOrder) as refused:
        confirm(db, gateway_shop, ghost, signature=signature)

    assert (refused.value.code, refused.value.status) == ("unknown_order", 404)
    assert differences(before, snapshot(db)) == {}


def test_a_failed_payment_has_nothing_to_confirm(db: Database, gateway_shop: Shop) -> None:
    paid = pay(db, gateway_shop, create_order(db, gateway_shop), succeed=False)

    outcome = deliver_queued(db, gateway_shop, queued_webhooks(db, "payment.failed")[0])

    assert (paid.signature, paid.error_description) == ("", "Payment failed: the payer declined it")
    assert (outcome.status, outcome.payment_id) == ("ignored", paid.payment_id)
    assert (count(db, gateway_shop, GatewayPayment), count(db, gateway_shop, Vend)) == (0, 0)


# --- orders --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [4_999, 5_000_001, 0])
def test_an_amount_outside_the_vend_limits_is_refused_before_an_order_exists(
    db: Database, gateway_shop: Shop, amount: int
) -> None:
    before = snapshot(db)

    with pytest.raises(PaymentRefused) as refused:
        create_order(db, gateway_shop, amount)

    assert (refused.value.code, refused.value.extra) == (
        "amount_out_of_range",
        {"minimum_paise": 5_000, "maximum_paise": 5_000_000},
    )
    assert differences(before, snapshot(db)) == {}


def test_an_order_for_a_meter_that_cannot_take_credit_is_refused(db: Database, gateway_shop: Shop) -> None:
    with db.unit_of_work(tenant=gateway_shop.tenant.id) as uow:
        meter = get_meter(uow.session, gateway_shop.serial)
        do_meter_transition(
            uow.session, meter, "suspend", permissions=frozenset({"meter.manage"}), reason="tamper"
        )
        uow.commit()

    with pytest.raises(PaymentRefused) as refused:
        create_order(db, gateway_shop)

    assert refused.value.code == "no_active_meter"
    assert count(db, gateway_shop, GatewayOrder) == 0


# --- webhooks ------------------------------------------------------------------------------------------


def test_the_webhook_alone_vends_and_the_late_callback_returns_the_same_vend(
    db: Database, gateway_shop: Shop
) -> None:
    paid = pay(db, gateway_shop, create_order(db, gateway_shop))

    by_webhook = deliver_queued(db, gateway_shop, queued_webhooks(db, "payment.captured")[0])
    by_callback = confirm(db, gateway_shop, paid)

    assert by_webhook.status == "vended"
    assert by_callback.vend is not None
    assert (by_callback.replayed, str(by_callback.vend.id)) == (True, by_webhook.vend_id)
    assert by_callback.payment.confirmed_by == "webhook"
    assert (count(db, gateway_shop, Vend), count(db, gateway_shop, JournalEntry)) == (1, 1)


def test_the_webhook_after_the_callback_returns_the_same_vend(db: Database, gateway_shop: Shop) -> None:
    paid = pay(db, gateway_shop, create_order(db, gateway_shop))
    settled = confirm(db, gateway_shop, paid)

    outcome = deliver_queued(db, gateway_shop, queued_webhooks(db, "payment.captured")[0])

    assert settled.vend is not None
    assert (outcome.status, outcome.vend_id) == ("already_settled", str(settled.vend.id))
    assert (count(db, gateway_shop, Vend), count(db, gateway_shop, JournalEntry)) == (1, 1)


def test_a_webhook_with_a_tampered_body_is_refused_and_changes_nothing(
    db: Database, gateway_shop: Shop
) -> None:
    pay(db, gateway_shop, create_order(db, gateway_shop))
    hook = queued_webhooks(db, "payment.captured")[0]
    tampered = hook["body"].replace('"amount":50000', '"amount":5000000').encode()
    before = snapshot(db)

    for body, signature in (
        (tampered, hook["signature"]),
        (hook["body"].encode(), ""),
        (hook["body"].encode(), "zz"),
    ):
        with pytest.raises(BadSignature):
            deliver(db, gateway_shop, body, signature)

    assert tampered != hook["body"].encode()
    assert differences(before, snapshot(db)) == {}


def test_a_replayed_webhook_is_recognised_and_changes_nothing(db: Database, gateway_shop: Shop) -> None:
    pay(db, gateway_shop, create_order(db, gateway_shop))
    hook = queued_webhooks(db, "payment.captured")[0]
    first = deliver_queued(db, gateway_shop, hook)
    before = snapshot(db)

    same_event = deliver_queued(db, gateway_shop, hook)
    same_body_new_event_id = deliver(db, gateway_shop, hook["body"].encode(), hook["signature"], "evt_other")

    assert first.status == "vended"
    assert (same_event.status, same_body_new_event_id.status) == ("duplicate", "duplicate")
    assert differences(before, snapshot(db)) == {}


def test_a_signed_webhook_for_an_unknown_order_is_acknowledged_and_vends_nothing(
    db: Database, gateway_shop: Shop
) -> None:
    entity = {"id": "pay_Ghost000000000", "order_id": "order_Ghost00000000", "amount": 50_000,
              "currency": "INR", "status": "captured", "method": "card"}  # fmt: skip
    body, signature, event_id = signed(db, gateway_shop, "payment.captured", {"payment": {"entity": entity}})

    outcome = deliver(db, gateway_shop, body, signature, event_id)

    assert (outcome.status, outcome.detail) == ("refused", "unknown_order: no order order_Ghost00000000")
    assert (count(db, gateway_shop, GatewayPayment), count(db, gateway_shop, Vend)) == (0, 0)
    assert count(db, gateway_shop, GatewayWebhookDelivery) == 1  # genuine, so kept for a person to see


def test_a_signed_webhook_with_the_wrong_amount_vends_nothing(db: Database, gateway_shop: Shop) -> None:
    order_id = create_order(db, gateway_shop)
    entity = {"id": "pay_Short000000000", "order_id": order_id, "amount": 100, "currency": "INR",
              "status": "captured", "method": "card"}  # fmt: skip
    body, signature, event_id = signed(db, gateway_shop, "payment.captured", {"payment": {"entity": entity}})

    outcome = deliver(db, gateway_shop, body, signature, event_id)

    assert outcome.status == "refused"
    assert outcome.detail.startswith(
        "amount_mismatch: payment pay_Short000000000 is 100 INR; the order is 50000 INR"
    )
    assert (count(db, gateway_shop, GatewayPayment), count(db, gateway_shop, Vend)) == (0, 0)
    assert balance(db, gateway_shop, AccountCode.GATEWAY_CLEARING) == 0


def test_another_tenants_webhook_secret_does_not_verify(db: Database, gateway_shop: Shop) -> None:
    pay(db, gateway_shop, create_order(db, gateway_shop))
    hook = queued_webhooks(db, "payment.captured")[0]
    import uuid

    from citygas.payments.gateway.simulator import simulator_secrets

    other = simulator_secrets(MASTER, uuid.UUID(int=7)).webhook_secret
    mine = simulator_secrets(MASTER, gateway_shop.tenant.id).webhook_secret

    assert other != mine
    assert hook["signature"] == webhook_signature(mine, hook["body"].encode())
    with pytest.raises(BadSignature):
        deliver(db, gateway_shop, hook["body"].encode(), webhook_signature(other, hook["body"].encode()))


# --- crashes and races ---------------------------------------------------------------------------------


def test_a_crash_between_capture_and_vend_leaves_nothing_and_the_webhook_retry_vends_once(
    db: Database, gateway_shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    paid = pay(db, gateway_shop, create_order(db, gateway_shop))
    before = snapshot(db)
    real_do_vend = service.do_vend  # type: ignore[attr-defined]

    def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("power cut after the capture")

    monkeypatch.setattr(service, "do_vend", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        confirm(db, gateway_shop, paid)
    after_crash = snapshot(db)
    monkeypatch.setattr(service, "do_vend", real_do_vend)

    outcome = deliver_queued(db, gateway_shop, queued_webhooks(db, "payment.captured")[0])

    assert differences(before, after_crash) == {}
    assert outcome.status == "vended"
    assert (count(db, gateway_shop, GatewayPayment), count(db, gateway_shop, Vend)) == (1, 1)
    assert count(db, gateway_shop, JournalEntry) == 1
    assert balance(db, gateway_shop, AccountCode.GATEWAY_CLEARING) == 50_000


@pytest.mark.slow
def test_the_callback_and_the_webhook_racing_in_two_threads_vend_once(
    db: Database, gateway_shop: Shop
) -> None:
    paid = pay(db, gateway_shop, create_order(db, gateway_shop))
    hook = queued_webhooks(db, "payment.captured")[0]
    start = threading.Barrier(2)
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def by_callback() -> None:
        try:
            start.wait()
            settled = confirm(db, gateway_shop, paid)
            results["callback"] = str(settled.vend.id if settled.vend else None)
        except BaseException as exc:
            errors.append(exc)

    def by_webhook() -> None:
        try:
            start.wait()
            results["webhook"] = deliver_queued(db, gateway_shop, hook).vend_id
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=by_callback), threading.Thread(target=by_webhook)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert errors == []
    assert results["callback"] == results["webhook"] != ""
    assert (count(db, gateway_shop, GatewayPayment), count(db, gateway_shop, Vend)) == (1, 1)
    assert count(db, gateway_shop, JournalEntry) == 1
    assert balance(db, gateway_shop, AccountCode.GATEWAY_CLEARING) == 50_000


# --- the token on the meter ----------------------------------------------------------------------------


def test_the_token_of_a_gateway_vend_credits_the_simulated_meter_exactly(
    db: Database, gateway_shop: Shop
) -> None:
    settled = confirm(db, gateway_shop, pay(db, gateway_shop, create_order(db, gateway_shop), method="upi"))
    assert settled.vend is not None
    meter = simulated_meter(db, gateway_shop)

    outcomes = [meter.enter_token(t["token"]).outcome for t in settled.vend.tokens]

    assert outcomes[-1] is AcceptOutcome.CREDIT_ADDED
    assert meter.credit == settled.vend.gas_credit_paise == 48_550


# --- vends the rules refuse, and refunds ---------------------------------------------------------------


def test_a_payment_whose_vend_is_refused_is_kept_for_a_refund_and_posts_nothing(
    db: Database, gateway_shop: Shop
) -> None:
    paid = pay(db, gateway_shop, create_order(db, gateway_shop))
    with db.unit_of_work(tenant=gateway_shop.tenant.id) as uow:
        meter = get_meter(uow.session, gateway_shop.serial)
        do_meter_transition(
            uow.session, meter, "suspend", permissions=frozenset({"meter.manage"}), reason="leak"
        )
        uow.commit()

    settled = confirm(db, gateway_shop, paid)
    refund = refund_payment(db, gateway_shop, paid.payment_id, key="refund-1")

    assert settled.vend is None
    assert (settled.payment.status, settled.payment.vend_error.split(":")[0]) == (
        "vend_failed",
        "meter_not_active",
    )
    assert (refund.refund.amount_paise, refund.refund.ledger_entry_id, refund.payment.status) == (
        50_000,
        None,
        "refunded",
    )
    assert (count(db, gateway_shop, Vend), count(db, gateway_shop, JournalEntry)) == (0, 0)


def refund_payment(
    db: Database, shop: Shop, payment_id: str, *, key: str, amount_paise: int | None = None
) -> service.RefundOutcome:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        outcome = do_refund_payment(
            uow.session,
            GatewaySimulator.for_tenant(uow.session, master_key=MASTER),
            payment_id=payment_id,
            reason="paid twice by mistake",
            request_key=key,
            amount_paise=amount_paise,
        )
        uow.commit()
        return outcome


def test_a_refund_after_the_token_was_issued_becomes_debt_recovered_at_the_next_vend(
    db: Database, gateway_shop: Shop
) -> None:
    first = confirm(db, gateway_shop, pay(db, gateway_shop, create_order(db, gateway_shop)))
    customer = customer_id(db, gateway_shop)

    refunded = refund_payment(db, gateway_shop, first.payment.gateway_payment_id, key="refund-1")
    again = refund_payment(db, gateway_shop, first.payment.gateway_payment_id, key="refund-1")
    webhook = deliver_queued(db, gateway_shop, queued_webhooks(db, "refund.processed")[0])
    debt_after_refund = balance(db, gateway_shop, AccountCode.DEBT_RECEIVABLE, customer)
    clearing_after_refund = balance(db, gateway_shop, AccountCode.GATEWAY_CLEARING)
    second = confirm(db, gateway_shop, pay(db, gateway_shop, create_order(db, gateway_shop, 100_000)))

    assert refunded.refund.ledger_entry_id is not None
    assert (again.replayed, again.refund.id) == (True, refunded.refund.id)
    assert (webhook.status, webhook.detail) == ("refund_recorded", refunded.refund.gateway_refund_id)
    assert (debt_after_refund, clearing_after_refund) == (50_000, 0)
    assert second.vend is not None
    assert second.vend.deductions == [{"kind": "debt_recovery", "amount_paise": 50_000}]
    assert second.vend.gas_credit_paise == 48_550  # the other ₹500 buys gas, as the first payment did
    assert balance(db, gateway_shop, AccountCode.DEBT_RECEIVABLE, customer) == 0
    assert count(db, gateway_shop, JournalEntry) == 3  # vend, refund, vend: the webhook posted nothing more


def test_a_refund_beyond_what_was_paid_is_refused_and_changes_nothing(
    db: Database, gateway_shop: Shop
) -> None:
    paid = pay(db, gateway_shop, create_order(db, gateway_shop))
    confirm(db, gateway_shop, paid)
    refund_payment(db, gateway_shop, paid.payment_id, key="refund-1", amount_paise=30_000)
    before = snapshot(db)

    with pytest.raises(PaymentRefused) as refused:
        refund_payment(db, gateway_shop, paid.payment_id, key="refund-2", amount_paise=20_001)

    assert (refused.value.code, refused.value.extra) == (
        "refund_exceeds_payment",
        {"refundable_paise": 20_000},
    )
    assert differences(before, snapshot(db)) == {}


# --- the tenant's own Razorpay account -----------------------------------------------------------------


def test_a_razorpay_account_is_stored_sealed_and_verifies_webhooks_without_the_sdk(
    db: Database, gateway_shop: Shop
) -> None:
    with db.unit_of_work(tenant=gateway_shop.tenant.id) as uow:
        do_configure_gateway_account(
            uow.session,
            master_key=MASTER,
            key_id="rzp_test_abcdefgh123456",
            key_secret="key-secret-0123456789",
            webhook_secret="hook-secret-0123",
        )
        uow.commit()
    body = json.dumps({"event": "payment.captured"}).encode()
    with db.unit_of_work(tenant=gateway_shop.tenant.id, read_only=True) as uow:
        gateway = gateway_for(uow.session, master_key=MASTER, simulator_enabled=True)
        account = uow.session.execute(select(GatewayAccount)).scalar_one()

    assert isinstance(gateway, RazorpayGateway)
    assert "key-secret" not in account.key_secret_sealed + account.webhook_secret_sealed
    assert gateway.verify_webhook_signature(body=body, signature=webhook_signature("hook-secret-0123", body))
    assert not gateway.verify_webhook_signature(
        body=body, signature=webhook_signature("key-secret-0123456789", body)
    )
    assert "secret" not in repr(gateway)


def test_amount_mismatch_is_a_conflict_with_a_stable_code() -> None:
    assert (AmountMismatch.code, AmountMismatch.status) == ("amount_mismatch", 409)
