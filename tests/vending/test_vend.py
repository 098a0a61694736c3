"""The vend: one transaction from payment to tokens, exactly once per key, whatever fails and retries."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from citygas.ledger.models import JournalEntry
from citygas.ledger.rules import AccountCode
from citygas.ledger.service import get_balance
from citygas.meters.service import do_meter_transition, get_meter
from citygas.platform.uow import Database
from citygas.sts import AcceptOutcome
from citygas.vending import service as vending
from citygas.vending.models import Vend
from citygas.vending.rules import Channel, VendRequest
from citygas.vending.service import IdempotencyConflict, VendRefused, do_vend
from tests.meters.test_registry import MASTER
from tests.vending.conftest import START, Shop, simulated_meter

STEPS = ["claimed", "priced", "tokens", "posted", "recorded"]


def _request(amount: int = 50_000, key: str = "pay-1", **kw: object) -> VendRequest:
    return VendRequest(
        channel=Channel.ONLINE,
        amount_paise=amount,
        idempotency_key=key,
        consumer_number="ALP-C-00000001",
        **kw,
    )  # type: ignore[arg-type]


def _vend(db: Database, shop: Shop, request: VendRequest, *, now: object = START) -> vending.VendOutcome:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        outcome = do_vend(uow.session, request, master_key=MASTER, now=now)  # type: ignore[arg-type]
        uow.commit()
        return outcome


def _counts(db: Database, shop: Shop) -> tuple[int, int, int]:
    with db.unit_of_work(tenant=shop.tenant.id, read_only=True) as uow:
        vends = uow.session.execute(select(func.count()).select_from(Vend)).scalar_one()
        entries = uow.session.execute(select(func.count()).select_from(JournalEntry)).scalar_one()
        customer_id = uow.session.execute(select(Vend.customer_id)).scalar()
        held = get_balance(uow.session, AccountCode.CUSTOMER_CREDIT, customer_id) if customer_id else 0
        return vends, entries, held


def test_a_top_up_splits_vat_credits_the_ledger_and_makes_tokens_the_meter_accepts(
    db: Database, shop: Shop
) -> None:
    outcome = _vend(db, shop, _request(50_000))
    vend = outcome.vend
    # ₹500 with 3 % VAT: gas value 48,544 paise (rounded up), VAT 1,456; the token carries whole tenths of a
    # rupee, so 48,550, the 6 paise given by the CGD as token rounding.
    assert (vend.amount_paise, vend.vat_paise, vend.gas_credit_paise, vend.rounding_paise) == (
        50_000,
        1_456,
        48_550,
        6,
    )
    assert vend.receipt_number == "ALP-R-00000001"
    assert [t["kind"] for t in vend.tokens] == ["set_tariff_rate", "credit"]
    with db.unit_of_work(tenant=shop.tenant.id, read_only=True) as uow:
        assert get_balance(uow.session, AccountCode.CUSTOMER_CREDIT, vend.customer_id) == 48_550
        assert get_balance(uow.session, AccountCode.VAT_PAYABLE, "Maharashtra") == 1_456
        assert get_balance(uow.session, AccountCode.TOKEN_ROUNDING) == 6
    meter = simulated_meter(db, shop)
    outcomes = [meter.enter_token(t["token"]).outcome for t in vend.tokens]
    assert outcomes == [AcceptOutcome.MANAGEMENT_APPLIED, AcceptOutcome.CREDIT_ADDED]
    assert (meter.status().tariff_paise_per_scm, meter.credit) == (4_850, vend.gas_credit_paise)


def test_the_next_top_up_needs_no_tariff_token(db: Database, shop: Shop) -> None:
    _vend(db, shop, _request(50_000, key="a"))
    second = _vend(db, shop, _request(20_000, key="b"), now=START + timedelta(minutes=5))
    assert [t["kind"] for t in second.vend.tokens] == ["credit"]
    assert second.vend.receipt_number == "ALP-R-00000002"


def test_a_retry_returns_the_first_vend_and_writes_nothing(db: Database, shop: Shop) -> None:
    first = _vend(db, shop, _request())
    again = _vend(db, shop, _request())
    assert (again.replayed, again.vend.id, again.vend.tokens) == (True, first.vend.id, first.vend.tokens)
    assert _counts(db, shop) == (1, 1, 48_550)


def test_the_same_key_for_another_amount_is_refused_and_changes_nothing(db: Database, shop: Shop) -> None:
    _vend(db, shop, _request(50_000))
    with pytest.raises(IdempotencyConflict):
        _vend(db, shop, _request(60_000))
    assert _counts(db, shop) == (1, 1, 48_550)


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_leaves_nothing_and_the_retry_vends_once(
    db: Database,
    shop: Shop,
    step: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(at: str) -> None:
        if at == step:
            raise RuntimeError(f"power cut at {at}")

    monkeypatch.setattr(vending, "checkpoint", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        _vend(db, shop, _request())
    assert _counts(db, shop) == (0, 0, 0)
    monkeypatch.setattr(vending, "checkpoint", lambda _at: None)
    retried = _vend(db, shop, _request())
    assert retried.replayed is False
    assert retried.vend.receipt_number == "ALP-R-00000001"  # the crashed attempt took no number with it
    assert _counts(db, shop) == (1, 1, 48_550)
    # ... and the retry's tokens work: the crashed attempt's TIDs were never issued.
    meter = simulated_meter(db, shop)
    assert [meter.enter_token(t["token"]).outcome.accepted for t in retried.vend.tokens] == [True, True]


@pytest.mark.slow
def test_two_threads_with_the_same_payment_vend_once(db: Database, shop: Shop) -> None:
    results: list[vending.VendOutcome] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def pay() -> None:
        try:
            barrier.wait()
            results.append(_vend(db, shop, _request()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pay) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.replayed for r in results) == [False, True]
    assert results[0].vend.id == results[1].vend.id
    assert _counts(db, shop) == (1, 1, 48_550)


@pytest.mark.parametrize(
    ("amount", "code"), [(4_999, "amount_out_of_range"), (5_000_001, "amount_out_of_range")]
)
def test_an_amount_outside_the_limits_is_refused_and_changes_nothing(
    db: Database,
    shop: Shop,
    amount: int,
    code: str,
) -> None:
    with pytest.raises(VendRefused) as refused:
        _vend(db, shop, _request(amount))
    assert refused.value.code == code
    assert _counts(db, shop) == (0, 0, 0)


def test_a_sixth_top_up_in_a_day_is_refused(db: Database, shop: Shop) -> None:
    for n in range(5):
        _vend(db, shop, _request(10_000, key=f"k{n}"), now=START + timedelta(minutes=n))
    with pytest.raises(VendRefused) as refused:
        _vend(db, shop, _request(10_000, key="k5"), now=START + timedelta(minutes=9))
    assert refused.value.code == "daily_limit"
    assert _counts(db, shop)[0] == 5


def test_a_suspended_meter_takes_no_credit(db: Database, shop: Shop) -> None:
    with db.unit_of_work(tenant=shop.tenant.id) as uow:
        do_meter_transition(
            uow.session,
            get_meter(uow.session, "SN0001"),
            "suspend",
            permissions=frozenset({"meter.manage"}),
            reason="tamper investigation",
        )
        uow.commit()
    with pytest.raises(VendRefused) as refused:
        _vend(db, shop, _request())
    assert refused.value.code == "meter_not_active"
    assert _counts(db, shop) == (0, 0, 0)


def test_a_customer_without_a_meter_is_told_so(db: Database, shop: Shop) -> None:
    request = VendRequest(
        channel=Channel.ONLINE, amount_paise=50_000, idempotency_key="x", consumer_number="ALP-C-00000002"
    )
    with pytest.raises(VendRefused) as refused:
        _vend(db, shop, request)
    assert refused.value.code == "no_meter"


def test_a_csc_vend_must_name_its_agent(db: Database, shop: Shop) -> None:
    request = VendRequest(
        channel=Channel.CSC, amount_paise=50_000, idempotency_key="x", consumer_number="ALP-C-00000001"
    )
    with pytest.raises(VendRefused) as refused:
        _vend(db, shop, request)
    assert refused.value.code == "agent_missing"
