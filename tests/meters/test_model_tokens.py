"""Tokens typed on a simulated meter go through the STS decoder rules exactly; and what the LCD shows."""

from __future__ import annotations

import re
from datetime import timedelta

from citygas import sts
from citygas.meters.display import lcd_lines
from citygas.meters.types import Alarm, EventCode, MeterMode, ValveState

from .test_model import KEY, KEY_PARAMS, OTHER_KEY, VENDING_KEY, Vendor, make_meter, open_meter


def test_a_token_issued_for_the_meter_is_accepted_and_logged() -> None:
    meter, vendor = make_meter(), Vendor()

    result = vendor.top_up(meter, 50_000)

    assert result.outcome is sts.AcceptOutcome.CREDIT_ADDED
    event = meter.events()[0]
    assert event.code is EventCode.TOKEN_ACCEPTED
    assert re.fullmatch(r"credit_added \+50000 tid=\d+", event.detail)


def test_a_replayed_token_is_rejected_as_used_and_changes_nothing() -> None:
    meter, vendor = make_meter(), Vendor()
    token = vendor.credit(meter, 50_000).token
    meter.enter_token(token)

    result = meter.enter_token(token)

    assert result.outcome is sts.AcceptOutcome.USED_ERROR
    assert meter.credit == 50_000
    assert meter.registers().tokens_accepted == 1
    assert meter.events(limit=500)[-1].code is EventCode.TOKEN_REJECTED


def test_a_token_older_than_the_40_remembered_is_rejected_as_old() -> None:
    meter, vendor = make_meter(), Vendor()
    oldest = vendor.credit(meter, 1_000).token
    for _ in range(40):
        vendor.top_up(meter, 1_000)

    result = meter.enter_token(oldest)

    assert result.outcome is sts.AcceptOutcome.OLD_ERROR
    assert meter.credit == 40_000


def test_a_token_for_another_meter_is_rejected() -> None:
    meter = make_meter()

    result = Vendor(OTHER_KEY).top_up(meter, 50_000)

    assert result.outcome is sts.AcceptOutcome.CRC_ERROR
    assert meter.credit == 0


def test_a_tampered_token_is_rejected() -> None:
    meter, vendor = make_meter(), Vendor()
    token = vendor.credit(meter, 50_000).token
    tampered = token[:-1] + str((int(token[-1]) + 1) % 10)

    result = meter.enter_token(tampered)

    assert not result.accepted
    assert meter.credit == 0


def test_a_volume_token_is_refused_by_a_currency_meter() -> None:
    meter = make_meter()
    token = sts.issue_metered_credit(
        decoder_key=KEY, convention=sts.GAS_VOLUME_TENTH_SCM, base_units=1_000, tid=5_900_000, ken=255
    ).token

    assert meter.enter_token(token).outcome is sts.AcceptOutcome.CLASS_ERROR


def test_the_keypad_locks_after_five_bad_tokens_and_unlocks_after_a_minute_of_meter_time() -> None:
    meter, vendor = make_meter(), Vendor()
    for _ in range(5):
        meter.enter_token("12345678901234567890")
    good = vendor.credit(meter, 50_000).token

    locked = meter.enter_token(good)
    assert locked.outcome is sts.AcceptOutcome.LOCKED_OUT
    assert Alarm.KEYPAD_LOCKED in meter.status().alarms

    meter.wait(60)
    assert meter.enter_token(good).outcome is sts.AcceptOutcome.CREDIT_ADDED
    assert Alarm.KEYPAD_LOCKED not in meter.status().alarms


def test_setting_the_clock_does_not_shorten_a_lockout() -> None:
    meter = make_meter()
    for _ in range(5):
        meter.enter_token("12345678901234567890")

    meter.set_clock(meter.now + timedelta(days=1))

    assert Alarm.KEYPAD_LOCKED in meter.status().alarms


def test_clear_credit_empties_the_register_and_closes_the_valve() -> None:
    meter, vendor = open_meter(50_000)
    token = sts.issue_clear_credit(decoder_key=KEY, tid=vendor.tid(meter), ken=255).token

    result = meter.enter_token(token)

    assert result.outcome is sts.AcceptOutcome.MANAGEMENT_APPLIED
    assert meter.credit == 0
    assert meter.valve is ValveState.CLOSED
    assert meter.money_counters()["cleared"] == 50_000


def test_set_tariff_rate_carries_paise_per_scm() -> None:
    meter, vendor = open_meter(50_000)
    token = sts.issue_set_tariff_rate(decoder_key=KEY, rate_field=5_500, tid=vendor.tid(meter), ken=255).token

    meter.enter_token(token)
    meter.consume(1_000, 3_600)

    assert meter.status().tariff_paise_per_scm == 5_500
    assert meter.credit == 44_500
    assert EventCode.TARIFF_CHANGED in [e.code for e in meter.events(limit=500)]


def test_a_key_change_set_installs_the_new_key_and_updates_the_identity() -> None:
    meter, vendor = make_meter(), Vendor()
    new_params = sts.DecoderKeyParameters(pan=KEY_PARAMS.pan, sgc="123457", ti=2, kt=2, krn=2, base_date=2014)
    new_key = sts.derive_decoder_key_dkga04(VENDING_KEY, new_params)
    change = sts.build_key_change_set(current_key=KEY, new_key=new_key, new_parameters=new_params, ken=255)

    outcomes = [meter.enter_token(token).outcome for token in change.tokens]

    assert outcomes[-1] is sts.AcceptOutcome.KEY_CHANGED
    assert (meter.identity().krn, meter.identity().ti) == (2, 2)
    assert EventCode.KEY_CHANGED in [e.code for e in meter.events(limit=500)]
    assert vendor.top_up(meter, 10_000).outcome is sts.AcceptOutcome.CRC_ERROR  # the old key is gone
    assert Vendor(new_key).top_up(meter, 10_000).outcome is sts.AcceptOutcome.CREDIT_ADDED


# --- the LCD --------------------------------------------------------------------------------------


def test_the_lcd_shows_credit_valve_and_the_accepted_token() -> None:
    meter, vendor = make_meter(), Vendor()
    vendor.top_up(meter, 50_000)

    assert lcd_lines(meter.status(), meter.last_token()) == [
        "CREDIT ₹500.00",
        "PRESS BUTTON",
        "ACCEPTED +₹500.00",
    ]


def test_the_lcd_shows_a_rejected_token() -> None:
    meter, vendor = make_meter(), Vendor()
    token = vendor.credit(meter, 50_000).token
    meter.enter_token(token)
    meter.press_button()
    meter.enter_token(token)

    assert lcd_lines(meter.status(), meter.last_token()) == ["CREDIT ₹500.00", "VALVE OPEN", "REJECTED: USED"]


def test_the_lcd_shows_debts_and_alarms() -> None:
    meter, _ = open_meter(1_000)
    meter.take_emergency_credit()
    meter.inject(EventCode.MAGNET_TAMPER)

    assert lcd_lines(meter.status()) == [
        "CREDIT ₹60.00",
        "EMERGENCY ₹50.00",
        "VALVE CLOSED",
        "LOW CREDIT",
        "EMERGENCY CREDIT",
        "E1 MAGNET TAMPER",
    ]


def test_the_lcd_of_a_volume_meter_shows_scm() -> None:
    meter = make_meter(MeterMode.VOLUME, threshold=200)
    Vendor().top_up(meter, 12_300)

    assert lcd_lines(meter.status(), meter.last_token()) == [
        "CREDIT 12.300 SCM",
        "PRESS BUTTON",
        "ACCEPTED +12.300 SCM",
    ]
