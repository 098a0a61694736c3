"""Auto top-up: the mandate's life, the job below and above the threshold, exactly one vend per debit
through retries, crashes and webhooks, failed debits, limits, and the walls between tenants."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from citygas.ledger import service as ledger_service
from citygas.meters.service import do_meter_transition, get_meter
from citygas.payments.autopay import service
from citygas.payments.autopay.models import AutopayDebit, AutopayMandate
from citygas.payments.autopay.rules import AutopayRefused, vend_key
from citygas.payments.autopay.service import (
    MandateStateConflict,
    UnknownMandate,
    do_cancel_mandate,
    do_change_terms,
    do_confirm_mandate,
    do_pause_mandate,
    do_resume_mandate,
    get_mandate,
    on_gateway_payment,
)
from citygas.payments.gateway.ports import GatewayPaymentInfo, payment_from_entity
from citygas.payments.gateway.service import BadSignature
from citygas.platform.workflow import WorkflowTransition
from citygas.vending.models import Vend
from tests.conftest import make_tenant
from tests.meters.test_registry import MASTER
from tests.payments.conftest_autopay import (
    CONFIG,
    HIGH,
    LOW,
    PHONE,
    T0,
    Household,
    fresh_sms,
    household,
    sms_to,
)
from tests.web.db_snapshot import differences, snapshot

__all__ = ["fresh_sms", "household"]  # fixtures

DAY = timedelta(hours=24)


def _crash_at(step: str) -> Callable[[str], None]:
    def crash(at: str) -> None:
        if at == step:
            raise RuntimeError(f"power cut at {at}")

    return crash


def _debit(h: Household) -> AutopayDebit:
    debits: list[AutopayDebit] = h.rows(AutopayDebit)
    assert len(debits) == 1, debits
    return debits[0]


# --- setting up ------------------------------------------------------------------------------------------


def test_a_new_mandate_waits_for_approval_with_its_terms_at_the_gateway(household: Household) -> None:
    household.at(T0)
    mandate = household.start()

    order = household.gateway.mandate_order(mandate.authorisation_order_id)
    assert mandate.state == "pending_authorisation"
    assert (order["method"], order["amount"], order["customer_id"]) == (
        "upi",
        100,
        mandate.gateway_customer_id,
    )
    assert order["token"]["max_amount"] == 200_000
    assert order["token"]["frequency"] == "as_presented"
    actions = [t.action for t in household.rows(WorkflowTransition) if t.workflow == "autopay_mandate"]
    assert actions == ["start", "register"]


def test_the_approval_activates_it_and_the_household_is_told(household: Household) -> None:
    household.at(T0)
    mandate = household.active_mandate()

    assert mandate.state == "active"
    assert mandate.token_id.startswith("token_")
    assert (mandate.vpa, mandate.live_key) == ("asha.rao@okhdfc", mandate.customer_id)
    texts = sms_to(household.db)
    assert any("Auto top-up is on for ALP-C-00000001" in t and "as••••••@okhdfc" in t for t in texts)


def test_a_forged_approval_is_refused_and_changes_nothing(household: Household) -> None:
    household.at(T0)
    mandate = household.start()
    approved = household.gateway.approve_mandate(mandate.authorisation_order_id, vpa="a@upi")
    before = snapshot(household.db)

    with household.db.unit_of_work(tenant=household.tenant_id) as uow:
        row = uow.session.get(AutopayMandate, mandate.id)
        assert row is not None
        with pytest.raises(BadSignature):
            do_confirm_mandate(
                uow.session,
                household.gateway,
                mandate=row,
                order_id=approved.order_id,
                payment_id=approved.payment_id,
                signature="0" * 64,
            )

    assert differences(before, snapshot(household.db)) == {}


@pytest.mark.parametrize(
    ("terms", "code"),
    [
        ({"amount_paise": 500.0}, "amount_invalid"),  # a float, even a whole one, is refused
        ({"threshold_paise": True}, "amount_invalid"),
        ({"max_amount_paise": 1_500_001, "amount_paise": 50_000}, "max_above_afa_limit"),
        ({"amount_paise": 300_000}, "amount_above_max"),
        ({"amount_paise": 4_999}, "amount_out_of_range"),
        ({"threshold_paise": 0}, "threshold_out_of_range"),
    ],
)
def test_terms_the_rules_refuse_are_refused_with_a_code_and_change_nothing(
    household: Household, terms: dict[str, object], code: str
) -> None:
    household.at(T0)
    before = snapshot(household.db)

    with pytest.raises(AutopayRefused) as refused:
        household.start(**terms)

    assert refused.value.code == code
    assert differences(before, snapshot(household.db)) == {}
    assert household.gateway.entities("order") == []


def test_the_maximum_may_be_exactly_15000_rupees(household: Household) -> None:
    household.at(T0)
    assert (
        household.start(max_amount_paise=1_500_000, amount_paise=1_500_000).state == "pending_authorisation"
    )


# --- the job: threshold, notice, debit, vend -------------------------------------------------------------


def test_above_the_threshold_the_job_does_nothing(household: Household) -> None:
    mandate = household.active_mandate()
    household.balance["paise"] = HIGH

    assert household.run(T0) == {mandate.id: "balance_ok"}
    household.balance["paise"] = None  # metering cannot tell: no money is taken on a guess
    assert household.run(T0 + timedelta(minutes=1)) == {mandate.id: "balance_unknown"}
    assert household.rows(AutopayDebit) == []


def test_below_the_threshold_it_notifies_then_debits_after_the_window_and_vends_once(
    household: Household,
) -> None:
    household.at(T0)
    mandate = household.active_mandate()
    household.balance["paise"] = LOW

    assert household.run(T0) == {mandate.id: "notified"}
    assert household.run(T0 + timedelta(hours=23)) == {mandate.id: "notice_running"}
    notice = [t for t in sms_to(household.db) if "Auto top-up will debit" in t]
    assert len(notice) == 1
    assert "₹500.00" in notice[0]
    assert "Alpha Gas" in notice[0]
    assert household.vends() == []

    assert household.run(T0 + DAY) == {mandate.id: "vended"}

    debit = _debit(household)
    (vend,) = household.vends()
    assert (debit.state, debit.vend_id, debit.sequence) == ("succeeded", vend.id, 1)
    assert (vend.channel, vend.amount_paise, vend.idempotency_key) == ("upi", 50_000, vend_key(mandate.id, 1))
    assert vend.payment_reference == debit.gateway_payment_id
    assert any(t.startswith("Gas top-up ALP-R-") for t in sms_to(household.db))  # the token, by SMS


def test_the_job_run_again_never_vends_or_debits_twice(household: Household) -> None:
    household.at(T0)
    household.active_mandate()
    household.balance["paise"] = LOW
    household.run(T0)
    household.run(T0 + DAY)
    household.balance["paise"] = HIGH  # the top-up arrived

    household.run(T0 + DAY)
    household.run(T0 + DAY + timedelta(minutes=1))

    assert len(household.vends()) == 1
    assert len(household.rows(AutopayDebit)) == 1
    assert (
        len(
            [p for p in household.gateway.entities("payment") if p.get("recurring") and p["amount"] == 50_000]
        )
        == 1
    )


# A crash after the vend's savepoint was released, retried in the same process (the ledger's account-id
# cache must not remember accounts of the rolled-back transaction) and in a fresh one.
@pytest.mark.parametrize(
    ("step", "fresh_process"),
    [
        ("charged", False),
        ("vended", False),
        ("vended", True),
    ],
)
def test_a_crash_after_the_debit_is_retried_and_vends_exactly_once(
    household: Household, step: str, fresh_process: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    household.at(T0)
    mandate = household.active_mandate()
    household.balance["paise"] = LOW
    household.run(T0)

    monkeypatch.setattr(service, "checkpoint", _crash_at(step))
    crashed = household.run(T0 + DAY)
    assert crashed == {mandate.id: "error: RuntimeError"}
    assert household.vends() == []
    assert _debit(household).state == "notified"  # our side rolled back; the gateway took the money

    monkeypatch.setattr(service, "checkpoint", lambda _at: None)
    if fresh_process:
        monkeypatch.setattr(ledger_service, "_account_ids", {})
    assert household.run(T0 + DAY + timedelta(minutes=1)) == {mandate.id: "vended"}
    household.balance["paise"] = HIGH
    household.run(T0 + DAY + timedelta(minutes=2))

    debit_payments = [
        p
        for p in household.gateway.entities("payment")
        if p["order_id"] == _debit(household).gateway_order_id
    ]
    assert len(debit_payments) == 1  # charged once: the retry found the payment on the order
    assert len(household.vends()) == 1


def test_the_webhook_and_the_job_settle_one_debit_once(
    household: Household, monkeypatch: pytest.MonkeyPatch
) -> None:
    household.at(T0)
    household.active_mandate()
    household.balance["paise"] = LOW
    household.run(T0)
    monkeypatch.setattr(service, "checkpoint", _crash_at("charged"))
    household.run(T0 + DAY)  # charged at the gateway, crashed before recording it
    monkeypatch.setattr(service, "checkpoint", lambda _at: None)
    event, payload = household.gateway.webhooks[-1]
    assert event == "payment.captured"

    info = payment_from_entity(payload["payment"]["entity"])
    with household.db.unit_of_work(tenant=household.tenant_id) as uow:
        first = on_gateway_payment(uow.session, household.gateway, info, master_key=MASTER, config=CONFIG)
        uow.commit()
    with household.db.unit_of_work(tenant=household.tenant_id) as uow:
        again = on_gateway_payment(uow.session, household.gateway, info, master_key=MASTER, config=CONFIG)
        uow.commit()
    household.run(T0 + DAY + timedelta(minutes=1))

    assert (first, again) == ("vended", "already_succeeded")
    assert len(household.vends()) == 1


def test_a_webhook_for_a_payment_that_is_no_debit_is_left_to_the_gateway_context(
    household: Household,
) -> None:
    info = GatewayPaymentInfo("pay_x", "order_not_a_debit", 100, "INR", "captured", "card")
    with household.db.unit_of_work(tenant=household.tenant_id) as uow:
        assert on_gateway_payment(uow.session, household.gateway, info, master_key=MASTER) is None


# --- failures --------------------------------------------------------------------------------------------


def test_a_failed_debit_tells_the_household_and_waits_before_trying_again(household: Household) -> None:
    household.at(T0)
    mandate = household.active_mandate()
    household.balance["paise"] = LOW
    household.gateway.fail_next_debit(mandate.token_id, reason="Insufficient funds in the payer's account")
    household.run(T0)

    assert household.run(T0 + DAY) == {mandate.id: "failed"}
    assert household.run(T0 + DAY + timedelta(hours=1)) == {mandate.id: "retry_later"}

    texts = sms_to(household.db)
    assert (
        "Auto top-up of ₹500.00 failed: Insufficient funds in the payer's account. Top up in the app."
        in texts
    )
    assert household.vends() == []
    after = household.mandate(mandate.id)
    assert (after.state, after.consecutive_failures) == ("active", 1)


def test_three_failures_in_a_row_pause_the_mandate_and_remind_the_household(household: Household) -> None:
    household.at(T0)
    mandate = household.active_mandate()
    household.balance["paise"] = LOW
    at = T0
    for _ in range(3):
        household.gateway.fail_next_debit(mandate.token_id, reason="Insufficient funds")
        assert household.run(at) == {mandate.id: "notified"}
        at += DAY
        assert household.run(at) == {mandate.id: "failed"}
        at += CONFIG.retry_gap

    after = household.mandate(mandate.id)
    assert (after.state, after.state_reason) == ("paused", "3 auto top-ups in a row failed")
    assert household.run(at) == {mandate.id: "paused"}
    texts = sms_to(household.db)
    assert sum("failed: Insufficient funds" in t for t in texts) == 3
    assert any("is paused after 3 failed debits" in t and "top up yourself" in t for t in texts)

    with household.db.unit_of_work(tenant=household.tenant_id) as uow:
        do_resume_mandate(uow.session, mandate=get_mandate(uow.session, mandate.id, household_phone=PHONE))
        uow.commit()
    assert household.run(at) == {mandate.id: "notified"}  # a fresh start: counts and wait reset


def test_a_debit_the_vend_refuses_is_refunded_and_pauses_the_mandate(household: Household) -> None:
    household.at(T0)
    mandate = household.active_mandate()
    household.balance["paise"] = LOW
    household.run(T0)
    with household.db.unit_of_work(tenant=household.tenant_id) as uow:  # the meter is suspended meanwhile
        meter = get_meter(uow.session, household.shop.serial)
        do_meter_transition(
            uow.session, meter, "suspend", permissions=frozenset({"meter.manage"}), reason="safety"
        )
        uow.commit()

    assert household.run(T0 + DAY) == {mandate.id: "vend_failed"}

    debit = _debit(household)
    assert debit.state == "vend_failed"
    assert debit.refund_id.startswith("rfnd_")
    assert household.mandate(mandate.id).state == "paused"
    assert household.vends() == []
    assert any("It will be refunded" in t for t in sms_to(household.db))


def test_no_more_debits_than_the_daily_limit(household: Household) -> None:
    household.config = replace(CONFIG, notice=timedelta(minutes=1))
    household.at(T0)
    mandate = household.active_mandate()
    with household.db.unit_of_work(tenant=household.tenant_id) as uow:
        row = uow.session.get(AutopayMandate, mandate.id)
        assert row is not None
        row.max_debits_per_day = 1
        uow.commit()
    household.balance["paise"] = LOW

    assert household.run(T0) == {mandate.id: "notified"}
    assert household.run(T0 + timedelta(minutes=1)) == {mandate.id: "vended"}
    assert household.run(T0 + timedelta(minutes=2)) == {mandate.id: "limit_reached"}  # still low: not today
    assert household.run(T0 + DAY) == {mandate.id: "notified"}  # a new day in India
    assert len(household.vends()) == 1


# --- the household's controls ----------------------------------------------------------------------------


def test_pausing_during_the_notice_window_means_no_debit(household: Household) -> None:
    household.at(T0)
    mandate = household.active_mandate()
    household.balance["paise"] = LOW
    household.run(T0)
    with household.db.unit_of_work(tenant=household.tenant_id) as uow:
        do_pause_mandate(uow.session, mandate=get_mandate(uow.session, mandate.id, household_phone=PHONE))
        uow.commit()

    assert household.run(T0 + DAY) == {mandate.id: "paused"}
    assert _debit(household).state == "skipped"
    assert household.vends() == []
    assert [p for p in household.gateway.entities("payment") if p["amount"] == 50_000] == []


def test_cancelling_revokes_the_token_at_the_gateway(household: Household) -> None:
    household.at(T0)
    mandate = household.active_mandate()
    with household.db.unit_of_work(tenant=household.tenant_id) as uow:
        row = get_mandate(uow.session, mandate.id, household_phone=PHONE, lock=True)
        do_cancel_mandate(uow.session, household.gateway, mandate=row)
        uow.commit()

    token = household.gateway.store[("token", mandate.token_id)].body
    after = household.mandate(mandate.id)
    assert token["recurring_details"]["status"] == "cancelled"
    assert (after.state, after.live_key) == ("cancelled", None)
    with household.db.unit_of_work(tenant=household.tenant_id) as uow, pytest.raises(MandateStateConflict):
        do_pause_mandate(uow.session, mandate=get_mandate(uow.session, mandate.id, household_phone=PHONE))


def test_a_new_threshold_is_changed_in_place_but_a_new_maximum_needs_a_new_mandate(
    household: Household,
) -> None:
    household.at(T0)
    old = household.active_mandate()
    with household.db.unit_of_work(tenant=household.tenant_id) as uow:
        row = get_mandate(uow.session, old.id, household_phone=PHONE, lock=True)
        same = do_change_terms(
            uow.session,
            household.gateway,
            mandate=row,
            threshold_paise=30_000,
            amount_paise=100_000,
            max_amount_paise=200_000,
            config=CONFIG,
        )
        uow.commit()
    with household.db.unit_of_work(tenant=household.tenant_id) as uow:
        row = get_mandate(uow.session, old.id, household_phone=PHONE, lock=True)
        bigger = do_change_terms(
            uow.session,
            household.gateway,
            mandate=row,
            threshold_paise=30_000,
            amount_paise=300_000,
            max_amount_paise=500_000,
            config=CONFIG,
        )
        uow.commit()

    assert same.new_mandate is None
    assert (household.mandate(old.id).threshold_paise, household.mandate(old.id).amount_paise) == (
        30_000,
        100_000,
    )
    assert bigger.new_mandate is not None
    assert household.mandate(old.id).state == "active"  # works on until the new one is approved
    new = household.approve(bigger.new_mandate)
    assert (new.state, new.max_amount_paise, new.replaces_id) == ("active", 500_000, old.id)
    assert household.mandate(old.id).state == "cancelled"


def test_a_mandate_not_approved_in_time_expires(household: Household) -> None:
    household.at(T0)
    mandate = household.start()

    assert household.run(T0 + timedelta(hours=1)) == {mandate.id: "authorisation:pending_authorisation"}
    assert household.run(T0 + timedelta(hours=25)) == {mandate.id: "authorisation:expired"}


def test_the_job_finds_an_approval_the_browser_never_brought_back(household: Household) -> None:
    household.at(T0)
    mandate = household.start()
    household.gateway.approve_mandate(mandate.authorisation_order_id, vpa="asha@upi")  # browser closed

    assert household.run(T0 + timedelta(minutes=5)) == {mandate.id: "authorisation:active"}
    assert household.mandate(mandate.id).token_id


# --- walls -----------------------------------------------------------------------------------------------


def test_another_tenant_and_another_household_cannot_reach_the_mandate(household: Household) -> None:
    household.at(T0)
    mandate = household.active_mandate()
    other = make_tenant(household.db, "bravo", "BRV")

    with household.db.unit_of_work(tenant=other.id, read_only=True) as uow, pytest.raises(UnknownMandate):
        get_mandate(uow.session, mandate.id, household_phone=None)
    with (
        household.db.unit_of_work(tenant=household.tenant_id, read_only=True) as uow,
        pytest.raises(UnknownMandate),
    ):
        get_mandate(uow.session, mandate.id, household_phone="9812345679")  # Bina Das, same CGD
    assert household.count(Vend) == 0
