"""The meter model: credit, pricing, valve and re-arm, emergency credit, friendly periods, tamper, events,
snapshots, clock and persistence. Each test is one behaviour with exact values.

The helpers at the top (``make_meter``, ``Vendor``) are shared with the other ``test_model_*`` files.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from citygas import sts
from citygas.meters.model import (
    EmergencyCreditRefused,
    InvalidMeterParameters,
    MeterClockError,
    SimulatedMeter,
)
from citygas.meters.types import (
    Alarm,
    EventCode,
    MeterIdentity,
    MeterMode,
    MeterParameters,
    Snapshot,
    ValveState,
)

VENDING_KEY = bytes.fromhex("abababababababab949494949494949401234567")  # STS conformance TEST key
PAN = "600727000000000009"
KEY_PARAMS = sts.DecoderKeyParameters(pan=PAN, sgc="123457", ti=1, kt=2, krn=1, base_date=2014)
KEY = sts.derive_decoder_key_dkga04(VENDING_KEY, KEY_PARAMS)
OTHER_KEY = sts.derive_decoder_key_dkga04(VENDING_KEY, replace(KEY_PARAMS, pan="600727000000000017"))
IST = timedelta(hours=5, minutes=30)


def ist(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An Asia/Kolkata wall-clock time as the aware UTC datetime the meter takes."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - IST


START = ist(2025, 3, 10, 10)  # a Monday morning, no friendly period


def make_meter(
    mode: MeterMode = MeterMode.CURRENCY,
    *,
    threshold: int = 10_000,
    emergency: int = 5_000,
    friendly_hours: tuple[int, int] | None = (22, 6),
    holidays: tuple[date, ...] = (),
    tariff: int = 5_000,
    start: datetime = START,
) -> SimulatedMeter:
    identity = MeterIdentity(
        serial="SIM-0001",
        sts_meter_number=PAN,
        model="G1.6",
        manufacturer_code=0,
        firmware="sim-1",
        mode=mode,
        sgc="123457",
        krn=1,
        ti=1,
        base_date=2014,
    )
    parameters = MeterParameters(
        low_credit_threshold=threshold,
        emergency_credit=emergency,
        friendly_hours=friendly_hours,
        friendly_holidays=holidays,
    )
    return SimulatedMeter(identity, parameters, tariff_paise_per_scm=tariff, decoder_key=KEY, start=start)


class Vendor:
    """The vending side for one meter: fresh, increasing TIDs from the meter's own clock."""

    def __init__(self, key: sts.DecoderKey = KEY) -> None:
        self.key = key
        self.last_tid: int | None = None

    def tid(self, meter: SimulatedMeter) -> int:
        self.last_tid = sts.next_tid(sts.minutes_since_base_date(meter.now, 2014), self.last_tid)
        return self.last_tid

    def credit(self, meter: SimulatedMeter, base_units: int) -> sts.IssuedCredit:
        convention = (
            sts.GAS_CURRENCY_TENTH_RUPEE
            if meter.identity().mode is MeterMode.CURRENCY
            else sts.GAS_VOLUME_TENTH_SCM
        )
        return sts.issue_metered_credit(
            decoder_key=self.key, convention=convention, base_units=base_units, tid=self.tid(meter), ken=255
        )

    def top_up(self, meter: SimulatedMeter, base_units: int) -> sts.AcceptResult:
        return meter.enter_token(self.credit(meter, base_units).token)

    def clear_tamper(self, meter: SimulatedMeter) -> sts.AcceptResult:
        token = sts.issue_clear_tamper_condition(decoder_key=self.key, tid=self.tid(meter), ken=255)
        return meter.enter_token(token.token)


def open_meter(credit: int = 50_000, **kwargs: object) -> tuple[SimulatedMeter, Vendor]:
    """A meter with ``credit`` loaded and its valve opened by the customer."""
    meter = make_meter(**kwargs)  # type: ignore[arg-type]
    vendor = Vendor()
    vendor.top_up(meter, credit)
    meter.press_button()
    return meter, vendor


def codes(meter: SimulatedMeter) -> list[EventCode]:
    return [event.code for event in meter.events(limit=500)]


# --- a new meter ------------------------------------------------------------------------------


def test_a_new_meter_has_no_credit_and_a_closed_valve() -> None:
    meter = make_meter()

    status = meter.status()

    assert status.credit == 0
    assert status.valve is ValveState.CLOSED
    assert status.alarms == {Alarm.LOW_CREDIT, Alarm.CREDIT_EXHAUSTED}
    assert status.at == START
    assert meter.events() == []


# --- credit and pricing -------------------------------------------------------------------------


def test_a_credit_token_raises_credit_by_exactly_the_carried_amount() -> None:
    meter, vendor = make_meter(), Vendor()
    issued = vendor.credit(meter, 1_234_567)  # 123 457 counts is above 16 383: rounded up to fit

    result = meter.enter_token(issued.token)

    assert result.outcome is sts.AcceptOutcome.CREDIT_ADDED
    assert issued.carried_base_units == 1_234_640
    assert meter.credit == 1_234_640
    assert meter.registers().cumulative_credit_loaded == 1_234_640
    assert meter.registers().tokens_accepted == 1


def test_a_volume_meter_credits_litres_in_tenths_of_a_scm() -> None:
    meter, vendor = make_meter(MeterMode.VOLUME, threshold=200), Vendor()

    vendor.top_up(meter, 12_345)

    assert meter.credit == 12_400


def test_gas_is_priced_with_the_meters_tariff() -> None:
    meter, _ = open_meter(50_000)  # Rs 500 at Rs 50/SCM

    delivered = meter.consume(500, 3_600)

    assert delivered == 500
    assert meter.credit == 47_500
    assert meter.registers().cumulative_litres == 500


def test_many_small_draws_cost_exactly_what_one_large_draw_costs() -> None:
    small, _ = open_meter(50_000, tariff=4_999)
    large, _ = open_meter(50_000, tariff=4_999)

    for _ in range(1_000):
        small.consume(1, 10)
    large.consume(1_000, 10_000)

    assert small.credit == large.credit == 50_000 - 4_999
    assert small.money_counters()["carry_thousandths"] == 0


def test_a_fraction_of_a_paisa_is_carried_not_charged() -> None:
    meter, _ = open_meter(50_000, tariff=4_999)

    meter.consume(1, 10)  # 4.999 paise

    assert meter.credit == 50_000 - 4
    assert meter.money_counters()["carry_thousandths"] == 999


def test_a_volume_meter_draws_litres() -> None:
    meter = make_meter(MeterMode.VOLUME, threshold=200)
    Vendor().top_up(meter, 1_000)
    meter.press_button()

    meter.consume(300, 3_600)

    assert meter.credit == 700


# --- valve and safety re-arm ---------------------------------------------------------------------


def test_credit_arms_the_valve_but_does_not_open_it() -> None:
    meter, vendor = make_meter(), Vendor()

    vendor.top_up(meter, 50_000)

    assert meter.valve is ValveState.ARMED
    assert meter.consume(100, 600) == 0


def test_the_button_opens_an_armed_valve() -> None:
    meter, vendor = make_meter(), Vendor()
    vendor.top_up(meter, 50_000)

    state = meter.press_button()

    assert state is ValveState.OPEN
    assert codes(meter)[-2:] == [EventCode.VALVE_ARMED, EventCode.VALVE_OPENED]


def test_the_button_does_not_open_a_closed_valve() -> None:
    meter = make_meter()

    assert meter.press_button() is ValveState.CLOSED


def test_the_valve_closes_when_credit_runs_out_and_the_rest_of_the_demand_is_not_met() -> None:
    meter, _ = open_meter(1_000)  # Rs 10 buys 200 L at Rs 50/SCM

    delivered = meter.consume(500, 3_600)

    assert delivered == 200
    assert meter.credit == 0
    assert meter.valve is ValveState.CLOSED
    closed = meter.events(limit=500)[-1]
    assert closed.code is EventCode.VALVE_CLOSED
    assert closed.at == START + timedelta(seconds=1_440)  # 200 of 500 L into the hour
    assert meter.now == START + timedelta(hours=1)


def test_a_residue_too_small_for_a_litre_stays_with_the_customer() -> None:
    meter, _ = open_meter(1_010, tariff=6_000)  # 168 L cost Rs 10.08; the 169th would cost 6 paise more

    delivered = meter.consume(500, 3_600)

    assert delivered == 168
    assert meter.credit == 2
    assert meter.valve is ValveState.CLOSED
    assert Alarm.CREDIT_EXHAUSTED in meter.status().alarms


def test_no_gas_flows_through_a_closed_valve() -> None:
    meter, _ = open_meter(1_000)
    meter.consume(500, 3_600)

    delivered = meter.consume(500, 3_600)

    assert delivered == 0
    assert meter.registers().cumulative_litres == 200


def test_credit_after_a_closure_arms_the_valve_for_the_button() -> None:
    meter, vendor = open_meter(1_000)
    meter.consume(500, 3_600)

    vendor.top_up(meter, 50_000)

    assert meter.valve is ValveState.ARMED
    assert meter.press_button() is ValveState.OPEN
    assert meter.consume(100, 600) == 100


# --- low credit -----------------------------------------------------------------------------------


def test_the_low_credit_alarm_is_logged_when_the_credit_falls_below_the_threshold() -> None:
    meter, _ = open_meter(12_000)

    meter.consume(1_000, 3_600)  # the 401st litre takes Rs 120 below Rs 100

    low = [e for e in meter.events() if e.code is EventCode.LOW_CREDIT]
    assert len(low) == 1
    assert low[0].at == START + timedelta(seconds=1_444)
    assert meter.credit == 7_000
    assert Alarm.LOW_CREDIT in meter.status().alarms


def test_no_low_credit_alarm_above_the_threshold() -> None:
    meter, _ = open_meter(50_000)

    meter.consume(100, 600)

    assert Alarm.LOW_CREDIT not in meter.status().alarms
    assert EventCode.LOW_CREDIT not in codes(meter)


# --- friendly periods -----------------------------------------------------------------------------


def test_the_valve_stays_open_at_night_and_the_shortfall_becomes_friendly_debt() -> None:
    meter, _ = open_meter(1_000, start=ist(2025, 3, 10, 22, 30))

    delivered = meter.consume(500, 3_600)

    assert delivered == 500
    assert meter.credit == 0
    assert meter.status().friendly_debt == 1_500
    assert meter.valve is ValveState.OPEN


def test_the_valve_closes_when_the_friendly_night_ends_in_debt() -> None:
    meter, _ = open_meter(1_000, start=ist(2025, 3, 10, 22, 30))
    meter.consume(500, 3_600)

    meter.advance_clock(ist(2025, 3, 11, 8))

    assert meter.valve is ValveState.CLOSED
    closed = meter.events(limit=500)[-1]
    assert (closed.code, closed.at) == (EventCode.VALVE_CLOSED, ist(2025, 3, 11, 6))


def test_friendly_debt_is_repaid_from_the_next_credit() -> None:
    meter, vendor = open_meter(1_000, start=ist(2025, 3, 10, 22, 30))
    meter.consume(500, 3_600)

    vendor.top_up(meter, 50_000)

    assert meter.credit == 48_500
    assert meter.status().friendly_debt == 0


def test_a_declared_holiday_is_friendly_all_day() -> None:
    meter, _ = open_meter(1_000, holidays=(date(2025, 3, 10),))

    delivered = meter.consume(500, 3_600)

    assert delivered == 500
    assert meter.valve is ValveState.OPEN
    assert meter.status().friendly_debt == 1_500


def test_without_friendly_hours_the_valve_closes_at_night() -> None:
    meter, _ = open_meter(1_000, friendly_hours=None, start=ist(2025, 3, 10, 23))

    assert meter.consume(500, 3_600) == 200
    assert meter.valve is ValveState.CLOSED


def test_friendly_hours_do_not_open_a_closed_valve() -> None:
    meter = make_meter(start=ist(2025, 3, 10, 23))

    assert meter.press_button() is ValveState.CLOSED
    assert meter.consume(100, 600) == 0


# --- emergency credit -----------------------------------------------------------------------------


def test_emergency_credit_is_added_when_credit_is_low() -> None:
    meter, _ = open_meter(8_000)

    added = meter.take_emergency_credit()

    status = meter.status()
    assert added == 5_000
    assert status.credit == 13_000
    assert status.emergency_credit_in_use == 5_000
    assert status.emergency_credit_available is False
    assert Alarm.EMERGENCY_CREDIT_IN_USE in status.alarms


def test_emergency_credit_arms_a_closed_valve() -> None:
    meter, _ = open_meter(1_000)
    meter.consume(500, 3_600)

    meter.take_emergency_credit()

    assert meter.valve is ValveState.ARMED


def test_emergency_credit_cannot_be_taken_twice_before_it_is_repaid() -> None:
    meter, _ = open_meter(1_000)
    meter.take_emergency_credit()

    with pytest.raises(EmergencyCreditRefused, match="already in use; a top-up must repay it"):
        meter.take_emergency_credit()
    assert meter.credit == 6_000


def test_emergency_credit_is_refused_while_credit_is_not_low() -> None:
    meter, _ = open_meter(50_000)

    with pytest.raises(EmergencyCreditRefused, match="only when the credit is low"):
        meter.take_emergency_credit()
    assert meter.credit == 50_000


def test_a_meter_without_emergency_credit_refuses_it() -> None:
    meter, _ = open_meter(1_000, emergency=0)

    with pytest.raises(EmergencyCreditRefused, match="without emergency credit"):
        meter.take_emergency_credit()


def test_emergency_credit_is_repaid_first_from_the_next_credit() -> None:
    meter, vendor = open_meter(1_000)
    meter.take_emergency_credit()
    meter.consume(600, 3_600)  # Rs 30 of the Rs 60

    vendor.top_up(meter, 50_000)

    status = meter.status()
    assert status.credit == 3_000 + 50_000 - 5_000
    assert status.emergency_credit_in_use == 0
    assert status.emergency_credit_available is True
    assert EventCode.EMERGENCY_CREDIT_REPAID in codes(meter)


def test_the_valve_closes_at_the_floor_of_emergency_credit() -> None:
    meter, _ = open_meter(1_000)
    meter.take_emergency_credit()

    delivered = meter.consume(2_000, 7_200)

    assert delivered == 1_200  # Rs 10 + Rs 50 at Rs 50/SCM
    assert meter.valve is ValveState.CLOSED
    assert meter.status().emergency_credit_in_use == 5_000


# --- tamper and sensor events ---------------------------------------------------------------------


@pytest.mark.parametrize("code", [EventCode.MAGNET_TAMPER, EventCode.CASE_OPEN, EventCode.VALVE_FAULT])
def test_tamper_closes_the_valve_whatever_the_credit(code: EventCode) -> None:
    meter, _ = open_meter(50_000)

    meter.inject(code)

    assert meter.valve is ValveState.CLOSED
    assert Alarm(code.value) in meter.status().alarms
    assert meter.consume(100, 600) == 0


def test_tamper_closes_the_valve_even_in_a_friendly_period() -> None:
    meter, _ = open_meter(50_000, start=ist(2025, 3, 10, 23))

    meter.inject(EventCode.MAGNET_TAMPER)

    assert meter.valve is ValveState.CLOSED


def test_a_tampered_meter_stays_closed_when_credit_arrives() -> None:
    meter, vendor = open_meter(50_000)
    meter.inject(EventCode.CASE_OPEN)

    vendor.top_up(meter, 10_000)

    assert meter.valve is ValveState.CLOSED
    assert meter.press_button() is ValveState.CLOSED


def test_clear_tamper_condition_arms_the_valve_and_clears_the_alarms() -> None:
    meter, vendor = open_meter(50_000)
    meter.inject(EventCode.MAGNET_TAMPER)

    result = vendor.clear_tamper(meter)

    assert result.outcome is sts.AcceptOutcome.MANAGEMENT_APPLIED
    assert meter.valve is ValveState.ARMED
    assert Alarm.MAGNET_TAMPER not in meter.status().alarms
    assert EventCode.TAMPER_CLEARED in codes(meter)


@pytest.mark.parametrize("code", [EventCode.LOW_BATTERY, EventCode.REVERSE_FLOW])
def test_warnings_raise_an_alarm_but_leave_the_valve_open(code: EventCode) -> None:
    meter, _ = open_meter(50_000)

    meter.inject(code, "sensor")

    assert meter.valve is ValveState.OPEN
    assert Alarm(code.value) in meter.status().alarms
    assert meter.events(limit=500)[-1].detail == "sensor"


def test_only_sensor_events_can_be_injected() -> None:
    meter = make_meter()

    with pytest.raises(ValueError, match="token_accepted is not a sensor event"):
        meter.inject(EventCode.TOKEN_ACCEPTED)
    assert meter.events() == []


def test_flow_above_qmax_raises_an_alarm() -> None:
    meter, _ = open_meter(50_000)

    delivered = meter.consume(3_000, 3_600)

    assert delivered == 3_000
    assert Alarm.FLOW_ABOVE_QMAX in meter.status().alarms
    assert EventCode.FLOW_ABOVE_QMAX in codes(meter)


# --- event log ------------------------------------------------------------------------------------


def test_the_event_log_keeps_the_last_200_events_with_lifelong_sequence_numbers() -> None:
    meter = make_meter()

    for _ in range(250):
        meter.inject(EventCode.LOW_BATTERY)

    kept = meter.events(limit=1_000)
    assert len(kept) == 200
    assert (kept[0].seq, kept[-1].seq) == (51, 250)


def test_events_are_read_after_a_sequence_number_in_pages() -> None:
    meter = make_meter()
    for _ in range(30):
        meter.inject(EventCode.LOW_BATTERY)

    page = meter.events(after_seq=10, limit=5)

    assert [e.seq for e in page] == [11, 12, 13, 14, 15]


# --- snapshots ------------------------------------------------------------------------------------


def test_a_daily_snapshot_is_taken_at_each_midnight_ist() -> None:
    meter, _ = open_meter(50_000)
    meter.consume(400, 3_600)

    meter.advance_clock(ist(2025, 3, 12, 1))

    assert meter.daily_snapshots() == [
        Snapshot(period_end=date(2025, 3, 10), cumulative_litres=400, credit=48_000),
        Snapshot(period_end=date(2025, 3, 11), cumulative_litres=400, credit=48_000),
    ]


def test_a_consumption_across_midnight_is_split_at_midnight() -> None:
    meter, _ = open_meter(50_000, start=ist(2025, 3, 10, 23, 30))

    meter.consume(600, 3_600)

    assert meter.daily_snapshots() == [
        Snapshot(period_end=date(2025, 3, 10), cumulative_litres=300, credit=48_500),
    ]


def test_the_last_90_daily_snapshots_are_kept() -> None:
    meter = make_meter()

    meter.advance_clock(ist(2025, 6, 18, 12))  # 100 midnights

    daily = meter.daily_snapshots()
    assert len(daily) == 90
    assert (daily[0].period_end, daily[-1].period_end) == (date(2025, 3, 20), date(2025, 6, 17))


def test_a_monthly_snapshot_is_taken_at_each_month_end() -> None:
    meter, _ = open_meter(50_000)
    meter.consume(400, 3_600)

    meter.advance_clock(ist(2025, 5, 2))

    assert meter.monthly_snapshots() == [
        Snapshot(period_end=date(2025, 3, 31), cumulative_litres=400, credit=48_000),
        Snapshot(period_end=date(2025, 4, 30), cumulative_litres=400, credit=48_000),
    ]


def test_the_last_24_monthly_snapshots_are_kept() -> None:
    meter = make_meter()

    meter.advance_clock(ist(2027, 9, 15))

    monthly = meter.monthly_snapshots()
    assert len(monthly) == 24
    assert (monthly[0].period_end, monthly[-1].period_end) == (date(2025, 9, 30), date(2027, 8, 31))


# --- clock ----------------------------------------------------------------------------------------


def test_setting_the_clock_skips_snapshots_and_is_logged() -> None:
    meter = make_meter()

    meter.set_clock(ist(2025, 3, 20, 10))

    assert meter.now == ist(2025, 3, 20, 10)
    assert meter.daily_snapshots() == []
    assert codes(meter) == [EventCode.CLOCK_SET]


def test_time_cannot_run_backwards() -> None:
    meter = make_meter()

    with pytest.raises(MeterClockError, match="cannot run backwards"):
        meter.advance_clock(START - timedelta(seconds=1))
    assert meter.now == START


def test_the_clock_refuses_a_naive_time() -> None:
    meter = make_meter()

    with pytest.raises(MeterClockError, match="timezone-aware"):
        meter.advance_clock(datetime(2025, 3, 11))  # noqa: DTZ001 - the point of the test


def test_waiting_moves_the_clock() -> None:
    meter = make_meter()

    meter.wait(90)

    assert meter.now == START + timedelta(seconds=90)


# --- parameters and tariff ------------------------------------------------------------------------


def test_raising_the_threshold_raises_the_low_credit_alarm() -> None:
    meter, _ = open_meter(50_000)

    meter.set_parameters(MeterParameters(low_credit_threshold=60_000, emergency_credit=5_000))

    assert Alarm.LOW_CREDIT in meter.status().alarms
    assert codes(meter)[-2:] == [EventCode.PARAMETERS_CHANGED, EventCode.LOW_CREDIT]


def test_parameters_with_impossible_hours_are_refused() -> None:
    meter = make_meter()

    with pytest.raises(InvalidMeterParameters, match=r"must be hours 0\.\.23"):
        meter.set_parameters(
            MeterParameters(low_credit_threshold=0, emergency_credit=0, friendly_hours=(22, 24))
        )
    assert meter.parameters().friendly_hours == (22, 6)


def test_a_new_tariff_prices_the_next_gas() -> None:
    meter, _ = open_meter(50_000)

    meter.set_tariff(6_000)
    meter.consume(1_000, 3_600)

    assert meter.credit == 44_000
    assert meter.status().tariff_paise_per_scm == 6_000


def test_a_currency_meter_refuses_a_zero_tariff() -> None:
    meter = make_meter()

    with pytest.raises(InvalidMeterParameters, match="must be positive"):
        meter.set_tariff(0)


# --- persistence ----------------------------------------------------------------------------------


def test_a_meter_survives_a_round_trip_through_json() -> None:
    meter, vendor = open_meter(50_000)
    first = vendor.credit(meter, 10_000)
    meter.enter_token(first.token)
    meter.consume(700, 3_600)
    meter.inject(EventCode.LOW_BATTERY)
    meter.advance_clock(ist(2025, 4, 2, 9))

    restored = SimulatedMeter.from_dict(json.loads(json.dumps(meter.to_dict())))

    assert restored.status() == meter.status()
    assert restored.registers() == meter.registers()
    assert restored.events(limit=500) == meter.events(limit=500)
    assert restored.daily_snapshots() == meter.daily_snapshots()
    assert restored.monthly_snapshots() == meter.monthly_snapshots()
    assert restored.last_token() == meter.last_token()
    assert restored.identity() == meter.identity()
    assert restored.to_dict() == meter.to_dict()
    assert restored.enter_token(first.token).outcome is sts.AcceptOutcome.USED_ERROR


def test_a_state_of_another_version_is_refused() -> None:
    data = make_meter().to_dict()
    data["version"] = 99

    with pytest.raises(ValueError, match="meter state version 99 is not 1"):
        SimulatedMeter.from_dict(data)


def test_the_repr_hides_the_key() -> None:
    meter = make_meter()

    assert KEY.material().hex() not in repr(meter)
    assert "<key hidden>" in repr(meter)
