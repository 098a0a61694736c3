"""The read side the home page uses: the balance estimate, consumption series and pending tokens."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

from tests.metering.conftest import RATE, T0, Cgd, frames_of, get_meter, live_meter, make_cgd, upload, vend

from citygas.metering.rules import litres_to_paise
from citygas.metering.service import consumption_series, estimate_balance, pending_tokens
from citygas.platform.uow import Database


def test_before_any_sync_the_estimate_is_empty_but_pending_tokens_show(db: Database, alpha: Cgd) -> None:
    vend(db, alpha, alpha.households[0].consumer_number, 50_000, key="pay-1")
    meter = get_meter(db, alpha, "ALPM0000001")
    with db.unit_of_work(tenant=alpha.tenant.id, read_only=True) as uow:
        estimate = estimate_balance(uow.session, meter, now=T0)
        series = consumption_series(uow.session, meter, kind="daily", periods=30)

    assert (estimate.mode, estimate.synced_at, estimate.estimated_paise, estimate.days_left) == (
        "currency",
        None,
        None,
        None,
    )
    assert [p.kind for p in estimate.pending] == ["set_tariff_rate", "credit"]
    assert estimate.low_credit is False
    assert series == []


def test_the_estimate_starts_at_the_meters_signed_credit_and_falls_with_the_daily_average(
    db: Database, alpha: Cgd
) -> None:
    runtime = live_meter(db, alpha, "ALPM0000001", at=T0 - timedelta(days=30))
    for token in vend(
        db, alpha, alpha.households[0].consumer_number, 600_000, key="p", now=T0 - timedelta(days=30)
    ).vend.tokens:
        runtime.meter.enter_token(token["token"])
    runtime.meter.press_button()
    runtime.run_until(T0)
    upload(db, alpha, "ALPM0000001", frames_of(alpha, runtime))
    meter = get_meter(db, alpha, "ALPM0000001")
    daily = runtime.meter.daily_snapshots()[-15:]
    average = (2 * (daily[-1].cumulative_litres - daily[0].cumulative_litres) + 14) // 28

    with db.unit_of_work(tenant=alpha.tenant.id, read_only=True) as uow:
        at_sync = estimate_balance(uow.session, meter, now=T0)
        a_day_later = estimate_balance(uow.session, meter, now=T0 + timedelta(days=1))

    assert at_sync.synced_at == T0
    assert at_sync.synced_credit_paise == at_sync.estimated_paise == runtime.meter.credit
    assert at_sync.price_paise_per_scm == RATE  # the meter charges the rate its tariff token set
    assert at_sync.daily_litres == average
    assert at_sync.daily_spend_paise == litres_to_paise(average, RATE)
    assert at_sync.days_left == runtime.meter.credit // at_sync.daily_spend_paise
    assert a_day_later.estimated_paise == runtime.meter.credit - at_sync.daily_spend_paise
    assert (at_sync.valve, at_sync.pending, at_sync.low_credit) == ("open", [], False)


def test_low_credit_shows_from_the_meters_alarm(db: Database, alpha: Cgd) -> None:
    runtime = live_meter(db, alpha, "ALPM0000001", at=T0 - timedelta(days=10))
    for token in vend(
        db, alpha, alpha.households[0].consumer_number, 12_000, key="p", now=T0 - timedelta(days=10)
    ).vend.tokens:
        runtime.meter.enter_token(token["token"])
    runtime.meter.press_button()
    runtime.run_until(T0)  # ₹120 lasts a few days: the credit is low or gone by now
    upload(db, alpha, "ALPM0000001", frames_of(alpha, runtime))
    meter = get_meter(db, alpha, "ALPM0000001")

    with db.unit_of_work(tenant=alpha.tenant.id, read_only=True) as uow:
        estimate = estimate_balance(uow.session, meter, now=T0)

    assert {"low_credit", "credit_exhausted"} & set(estimate.alarms)
    assert estimate.low_credit is True


def test_daily_and_monthly_series_come_from_consecutive_snapshots_at_the_rate_then(
    db: Database, alpha: Cgd
) -> None:
    runtime = live_meter(db, alpha, "ALPM0000001", at=T0 - timedelta(days=75))
    for token in vend(
        db, alpha, alpha.households[0].consumer_number, 1_000_000, key="p", now=T0 - timedelta(days=75)
    ).vend.tokens:
        runtime.meter.enter_token(token["token"])
    runtime.meter.press_button()
    runtime.run_until(T0)
    upload(db, alpha, "ALPM0000001", frames_of(alpha, runtime))
    meter = get_meter(db, alpha, "ALPM0000001")
    days = runtime.meter.daily_snapshots()

    with db.unit_of_work(tenant=alpha.tenant.id, read_only=True) as uow:
        daily = consumption_series(uow.session, meter, kind="daily", periods=30)
        monthly = consumption_series(uow.session, meter, kind="monthly", periods=12)

    assert len(daily) == 30
    assert [p.period_end for p in daily] == [s.period_end for s in days[-30:]]
    assert [p.litres for p in daily] == [
        b.cumulative_litres - a.cumulative_litres for a, b in pairwise(days[-31:])
    ]
    assert all(p.paise == litres_to_paise(p.litres, RATE) for p in daily)
    assert all(100 <= p.litres <= 3000 for p in daily if p.litres)  # a household's cooking, or a day away
    months = runtime.meter.monthly_snapshots()
    assert [p.period_end for p in monthly] == [m.period_end for m in months[1:]]
    assert [p.litres for p in monthly] == [
        b.cumulative_litres - a.cumulative_litres for a, b in pairwise(months)
    ]


def test_a_volume_meters_litres_are_valued_at_the_charge_areas_rate(db: Database) -> None:
    cgd = make_cgd(db, "sahyadri", "SCG", [("Eshwar Gowda", "9833333333", True)], mode="volume")
    runtime = live_meter(db, cgd, "SCGM0000001", at=T0 - timedelta(days=20))
    for token in vend(
        db, cgd, cgd.households[0].consumer_number, 100_000, key="p", now=T0 - timedelta(days=20)
    ).vend.tokens:
        runtime.meter.enter_token(token["token"])
    runtime.meter.press_button()
    runtime.run_until(T0)
    upload(db, cgd, "SCGM0000001", frames_of(cgd, runtime))
    meter = get_meter(db, cgd, "SCGM0000001")

    with db.unit_of_work(tenant=cgd.tenant.id, read_only=True) as uow:
        estimate = estimate_balance(uow.session, meter, now=T0)

    assert estimate.mode == "volume"
    assert estimate.synced_credit == runtime.meter.credit  # litres, as the meter shows them
    assert estimate.synced_credit_paise == litres_to_paise(runtime.meter.credit, RATE)
    assert estimate.estimated_paise == estimate.synced_credit_paise


def test_pending_tokens_of_several_vends_come_oldest_first_and_only_for_this_meter(
    db: Database, alpha: Cgd
) -> None:
    first = vend(db, alpha, alpha.households[0].consumer_number, 50_000, key="a", now=T0)
    second = vend(
        db, alpha, alpha.households[0].consumer_number, 20_000, key="b", now=T0 + timedelta(minutes=5)
    )
    vend(db, alpha, alpha.households[1].consumer_number, 20_000, key="c", now=T0)  # another household's meter
    meter = get_meter(db, alpha, "ALPM0000001")

    with db.unit_of_work(tenant=alpha.tenant.id, read_only=True) as uow:
        pending = pending_tokens(uow.session, meter)

    assert [(p.receipt_number, p.kind) for p in pending] == [
        (first.vend.receipt_number, "set_tariff_rate"),
        (first.vend.receipt_number, "credit"),
        (
            second.vend.receipt_number,
            "credit",
        ),  # the rate is on the meter's record now: no second tariff token
    ]
    assert [p.gas_credit_paise for p in pending] == [
        0,
        first.vend.gas_credit_paise,
        second.vend.gas_credit_paise,
    ]
