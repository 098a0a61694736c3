"""The pure rules of auto top-up, and the Razorpay adapter's mandate requests as the SDK would get them."""

from __future__ import annotations

import sys
import types
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from citygas.payments.autopay.rules import (
    DEFAULT_CONFIG,
    MANDATE,
    AutopayRefused,
    check_terms,
    check_vpa,
    mask_vpa,
    needs_topup,
    notice_for,
    over_frequency_limit,
    vend_key,
)
from citygas.payments.gateway.razorpay_adapter import RazorpayGateway
from citygas.platform.workflow_rules import WorkflowError


@pytest.mark.parametrize(
    ("state", "action", "target"),
    [
        ("created", "register", "pending_authorisation"),
        ("pending_authorisation", "authorise", "active"),
        ("pending_authorisation", "decline", "failed"),
        ("pending_authorisation", "expire", "expired"),
        ("active", "pause", "paused"),
        ("paused", "resume", "active"),
        ("paused", "cancel", "cancelled"),
        ("active", "expire", "expired"),
    ],
)
def test_the_mandate_moves_as_declared(state: str, action: str, target: str) -> None:
    assert MANDATE.check(action, state, reason="because").target == target


@pytest.mark.parametrize(
    ("state", "action"),
    [("pending_authorisation", "pause"), ("active", "authorise"), ("created", "resume"), ("paused", "pause")],
)
def test_moves_the_state_machine_does_not_allow_are_refused(state: str, action: str) -> None:
    with pytest.raises(WorkflowError):
        MANDATE.check(action, state, reason="because")


def test_final_states_are_final_and_pausing_or_cancelling_needs_a_reason() -> None:
    for final in ("cancelled", "failed", "expired"):
        assert MANDATE.available(final) == []
    with pytest.raises(WorkflowError, match="needs a reason"):
        MANDATE.check("cancel", "active", reason=" ")


def test_terms_are_whole_paise_within_the_afa_limit() -> None:
    terms = check_terms(threshold_paise=20_000, amount_paise=1_500_000, max_amount_paise=1_500_000)
    assert terms.max_amount_paise == 1_500_000
    with pytest.raises(AutopayRefused) as above:
        check_terms(threshold_paise=20_000, amount_paise=50_000, max_amount_paise=1_500_100)
    assert (above.value.code, above.value.extra) == ("max_above_afa_limit", {"limit_paise": 1_500_000})
    with pytest.raises(AutopayRefused, match="whole number of paise"):
        check_terms(threshold_paise=20_000, amount_paise=Decimal_like(), max_amount_paise=200_000)


class Decimal_like:  # noqa: N801 - an amount that is not an int
    pass


def test_when_to_top_up_and_how_often() -> None:
    assert needs_topup(19_999, 20_000)
    assert not needs_topup(20_000, 20_000)
    assert not needs_topup(None, 20_000)
    assert over_frequency_limit(debits_today=2, debits_this_month=2, per_day=2, per_month=10)
    assert over_frequency_limit(debits_today=0, debits_this_month=10, per_day=2, per_month=10)
    assert over_frequency_limit(debits_today=1, debits_this_month=5, per_day=2, per_month=10) is None


def test_a_real_gateway_is_never_given_less_than_24_hours_notice() -> None:
    short = DEFAULT_CONFIG.__class__(notice=timedelta(minutes=2))
    assert notice_for("simulator", short) == timedelta(minutes=2)
    assert notice_for("razorpay", short) == timedelta(hours=24)


def test_upi_ids_are_checked_and_shown_masked() -> None:
    assert check_vpa(" Asha.Rao@OKHDFC ") == "asha.rao@okhdfc"
    assert check_vpa("") == ""
    for bad in ("asha", "@upi", "a b@upi", "asha@"):
        with pytest.raises(AutopayRefused):
            check_vpa(bad)
    assert mask_vpa("asha.rao@okhdfc") == "as••••••@okhdfc"
    assert mask_vpa("abc@upi") == "a•••@upi"
    assert mask_vpa("") == ""


def test_the_vend_key_names_the_mandate_and_the_debit() -> None:
    mandate = uuid.UUID(int=7)
    assert vend_key(mandate, 3) == f"autopay:{mandate}:3"
    assert len(vend_key(mandate, 10**9)) <= 128


# --- the Razorpay adapter: the requests it builds, recorded instead of sent --------------------------


class Recorder:
    """Stands in for `razorpay.Client`: each resource method records its call and answers like Razorpay."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        answers: dict[str, Any] = {
            "customer.create": {"id": "cust_A1", "entity": "customer"},
            "order.create": {
                "id": "order_A1",
                "entity": "order",
                "amount": 100,
                "currency": "INR",
                "receipt": "r",
                "status": "created",
            },
            "order.payments": {"entity": "collection", "count": 0, "items": []},
            "payment.createRecurring": {
                "razorpay_payment_id": "pay_A1",
                "razorpay_order_id": "order_A1",
                "razorpay_signature": "x",
            },
            "payment.fetch": {
                "id": "pay_A1",
                "order_id": "order_A1",
                "amount": 50_000,
                "currency": "INR",
                "status": "created",
                "method": "upi",
                "token_id": "token_A1",
            },
            "token.fetch": {
                "id": "token_A1",
                "max_amount": 200_000,
                "vpa": {"username": "asha", "handle": "upi"},
                "recurring_details": {"status": "confirmed", "failure_reason": None},
            },
            "token.delete": {"deleted": True},
        }
        for resource in ("customer", "order", "payment", "token"):
            methods = {
                name.split(".")[1]: self._method(name, answers[name])
                for name in answers
                if name.startswith(resource + ".")
            }
            setattr(self, resource, types.SimpleNamespace(**methods))

    def _method(self, name: str, answer: dict[str, Any]) -> Any:
        def call(*args: Any, **kwargs: Any) -> dict[str, Any]:
            self.calls.append((name, args, kwargs))
            return answer

        return call


@pytest.fixture
def razorpay(monkeypatch: pytest.MonkeyPatch) -> tuple[RazorpayGateway, Recorder]:
    errors = types.ModuleType("razorpay.errors")
    for name in ("BadRequestError", "GatewayError", "ServerError"):
        setattr(errors, name, type(name, (Exception,), {}))
    monkeypatch.setitem(sys.modules, "razorpay.errors", errors)  # the SDK is not installed here
    gateway = RazorpayGateway(key_id="rzp_test_abc", key_secret="s" * 20, webhook_secret="w" * 16)
    recorder = Recorder()
    gateway._client = recorder
    return gateway, recorder


def test_razorpay_registration_is_a_customer_and_an_upi_order_with_the_token_terms(
    razorpay: tuple[RazorpayGateway, Recorder],
) -> None:
    gateway, recorder = razorpay
    expire = datetime(2031, 1, 1, tzinfo=UTC)

    registration = gateway.create_mandate_registration(
        name="Asha Rao",
        contact="9812345678",
        email="",
        max_amount_paise=200_000,
        expire_at=expire,
        receipt="autopay-1",
        notes={"consumer_number": "ALP-C-00000001"},
    )

    (customer, order) = recorder.calls
    assert customer == (
        "customer.create",
        ({"name": "Asha Rao", "contact": "9812345678", "fail_existing": "0"},),
        {"timeout": 10.0},
    )
    assert order[0] == "order.create"
    assert order[1][0] == {
        "amount": 100,
        "currency": "INR",
        "customer_id": "cust_A1",
        "method": "upi",
        "payment_capture": 1,
        "receipt": "autopay-1",
        "notes": {"consumer_number": "ALP-C-00000001"},
        "token": {"max_amount": 200_000, "expire_at": int(expire.timestamp()), "frequency": "as_presented"},
    }
    assert (registration.customer_id, registration.order_id) == ("cust_A1", "order_A1")


def test_razorpay_debit_is_a_notified_order_then_a_recurring_payment_with_the_token(
    razorpay: tuple[RazorpayGateway, Recorder],
) -> None:
    gateway, recorder = razorpay
    after = datetime(2026, 12, 5, 7, 0, tzinfo=UTC)

    gateway.notify_mandate_debit(
        token_id="token_A1", amount_paise=50_000, debit_after=after, receipt="d-1", notes={}
    )
    paid = gateway.charge_mandate(
        customer_id="cust_A1",
        token_id="token_A1",
        order_id="order_A1",
        amount_paise=50_000,
        contact="9812345678",
        email="",
        description="Gas auto top-up",
        notes={"sequence": "1"},
    )
    gateway.cancel_mandate(customer_id="cust_A1", token_id="token_A1")
    mandate = gateway.fetch_mandate(customer_id="cust_A1", payment_id="pay_A1")

    names = [c[0] for c in recorder.calls]
    assert names == [
        "order.create",
        "payment.createRecurring",
        "payment.fetch",
        "token.delete",
        "payment.fetch",
        "token.fetch",
    ]
    assert recorder.calls[0][1][0]["notification"] == {
        "token_id": "token_A1",
        "payment_after": int(after.timestamp()),
    }
    assert recorder.calls[1][1][0] == {
        "amount": 50_000,
        "currency": "INR",
        "order_id": "order_A1",
        "customer_id": "cust_A1",
        "token": "token_A1",
        "recurring": "1",
        "contact": "9812345678",
        "description": "Gas auto top-up",
        "notes": {"sequence": "1"},
    }
    assert recorder.calls[3][1] == ("cust_A1", "token_A1")
    assert (paid.id, paid.status) == ("pay_A1", "created")
    assert (mandate.token_id, mandate.status, mandate.vpa, mandate.max_amount_paise) == (
        "token_A1",
        "confirmed",
        "asha@upi",
        200_000,
    )
