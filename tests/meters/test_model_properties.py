"""Properties of the valve, re-arm, emergency and friendly rules over random sequences of what happens to a
meter: top-ups, cooking, waiting (through nights and holidays), button presses, emergency credit, tamper."""

from __future__ import annotations

from datetime import date

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from citygas.meters.model import EmergencyCreditRefused
from citygas.meters.types import EventCode, MeterMode, ValveState

from .test_model import Vendor, ist, make_meter

TARIFF = 4_999  # not a round number, so fractions of a paisa are carried


class MeterMachine(RuleBasedStateMachine):
    mode = MeterMode.CURRENCY

    def __init__(self) -> None:
        super().__init__()
        self.meter = make_meter(
            self.mode,
            threshold=10_000 if self.mode is MeterMode.CURRENCY else 2_000,
            emergency=5_000 if self.mode is MeterMode.CURRENCY else 1_000,
            tariff=TARIFF,
            holidays=(date(2025, 3, 12),),
            start=ist(2025, 3, 10, 20),
        )
        self.vendor = Vendor()
        self.valve = self.meter.valve

    def _after(self, *, pressed: bool = False) -> None:
        now = self.meter.valve
        if not pressed:
            # The safety re-arm: nothing but the button opens a valve that was not open.
            assert not (self.valve is not ValveState.OPEN and now is ValveState.OPEN)
        self.valve = now

    @rule(amount=st.integers(min_value=0, max_value=60_000))
    def top_up(self, amount: int) -> None:
        before = self.meter.credit
        status = self.meter.status()
        owed = status.emergency_credit_in_use + status.friendly_debt
        issued = self.vendor.credit(self.meter, amount)
        assert self.meter.enter_token(issued.token).accepted
        assert self.meter.credit == max(0, before + issued.carried_base_units - owed)
        self._after()

    @rule(litres=st.integers(min_value=0, max_value=3_000), minutes=st.integers(min_value=1, max_value=600))
    def cook(self, litres: int, minutes: int) -> None:
        valve_before = self.meter.valve
        used_before = self.meter.registers().cumulative_litres
        debt_before = self.meter.status().friendly_debt
        friendly_on_the_way = self.meter.is_friendly_now() or minutes > 60 or self._friendly_within(minutes)
        delivered = self.meter.consume(litres, minutes * 60)
        assert 0 <= delivered <= litres
        assert self.meter.registers().cumulative_litres == used_before + delivered
        if valve_before is not ValveState.OPEN:
            assert delivered == 0  # gas never flows while the valve is not open
        if self.meter.status().friendly_debt > debt_before:
            assert friendly_on_the_way  # debt is run up only in a friendly period
        self._after()

    def _friendly_within(self, minutes: int) -> bool:
        # Friendly periods start on the hour, so one starts within ``minutes`` (<= 60) only across an hour.
        return (self.meter.now.minute + minutes) >= 60

    @rule(minutes=st.integers(min_value=0, max_value=3 * 24 * 60))
    def wait(self, minutes: int) -> None:
        self.meter.wait(minutes * 60)
        self._after()

    @rule()
    def press_button(self) -> None:
        before = self.meter.valve
        after = self.meter.press_button()
        if before is ValveState.CLOSED:
            assert after is ValveState.CLOSED
        self._after(pressed=True)

    @rule()
    def take_emergency_credit(self) -> None:
        owed_before = self.meter.status().emergency_credit_in_use
        try:
            self.meter.take_emergency_credit()
        except EmergencyCreditRefused:
            pass
        else:
            assert owed_before == 0  # only once until repaid
        self._after()

    @rule(code=st.sampled_from([EventCode.MAGNET_TAMPER, EventCode.CASE_OPEN, EventCode.LOW_BATTERY]))
    def tamper(self, code: EventCode) -> None:
        self.meter.inject(code)
        if code is not EventCode.LOW_BATTERY:
            assert self.meter.valve is ValveState.CLOSED
        self._after()

    @precondition(lambda self: self.meter.status().alarms)
    @rule()
    def clear_tamper(self) -> None:
        assert self.vendor.clear_tamper(self.meter).accepted
        self._after()

    @invariant()
    def credit_and_debts_are_never_negative(self) -> None:
        status = self.meter.status()
        assert status.credit >= 0
        assert status.emergency_credit_in_use >= 0
        assert status.friendly_debt >= 0

    @invariant()
    def money_is_conserved(self) -> None:
        counters = self.meter.money_counters()
        status = self.meter.status()
        assert (
            counters["loaded"] - counters["charged"] - counters["cleared"]
            == status.credit - status.emergency_credit_in_use - status.friendly_debt
        )

    @invariant()
    def gas_is_priced_exactly(self) -> None:
        litres = self.meter.registers().cumulative_litres
        counters = self.meter.money_counters()
        if self.mode is MeterMode.CURRENCY:
            assert counters["charged"] * 1_000 + counters["carry_thousandths"] == litres * TARIFF
        else:
            assert counters["charged"] == litres

    @invariant()
    def an_open_valve_has_credit_or_a_friendly_period_and_no_tamper(self) -> None:
        status = self.meter.status()
        if status.valve is ValveState.OPEN:
            assert not {"magnet_tamper", "case_open", "valve_fault"} & set(status.alarms)
            assert "credit_exhausted" not in status.alarms or self.meter.is_friendly_now()

    @invariant()
    def a_closed_valve_has_a_reason(self) -> None:
        status = self.meter.status()
        if status.valve is ValveState.CLOSED:
            assert "credit_exhausted" in status.alarms or {"magnet_tamper", "case_open"} & set(status.alarms)


class VolumeMeterMachine(MeterMachine):
    mode = MeterMode.VOLUME


_SETTINGS = settings(
    max_examples=60, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestCurrencyMeterRules = MeterMachine.TestCase
TestCurrencyMeterRules.settings = _SETTINGS
TestVolumeMeterRules = VolumeMeterMachine.TestCase
TestVolumeMeterRules.settings = _SETTINGS
