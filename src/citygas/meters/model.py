"""The pure model of a G1.6 prepaid gas meter (Qmax 2.5 m³/h): what the meter does, not how it is reached.

The simulator, the fleet simulator and the tests drive it; nothing here reads the wall clock, so time can
run as fast as the caller likes. The meter clock has one-second resolution and runs on UTC; days, months,
night-time friendly hours and holidays are those of Asia/Kolkata (UTC+05:30 all year, no daylight saving).

Rules, and why:

* **Credit** is one register: paise in currency mode, litres in volume mode. It never goes negative.
* **Pricing** (currency mode): each litre costs ``tariff / 1000`` paise. The meter keeps the thousandths of
  a paisa it has not yet charged (``carry``) and charges only whole paise, so the customer is never charged
  a fraction early, and over any number of small draws the total charged is exactly
  ``floor(total litres x tariff / 1000)``: no paisa is lost or invented.
* **Exhausted** means the register cannot pay for one more litre. In currency mode a residue smaller than
  the price of a litre (a few paise) may stay on the register; it is the customer's and counts towards the
  next top-up.
* **Valve**: credit exhaustion closes an OPEN valve, except in a friendly period (22:00-06:00 and declared
  holidays by default), when gas keeps flowing and what it costs beyond the credit is kept as a separate
  **friendly debt**; when the friendly period ends with the credit still exhausted, the valve closes.
  Tamper (magnet, case open) and a valve fault close the valve whatever the credit or the hour, until a
  ClearTamperCondition token is accepted: safety and revenue protection come before friendliness.
* **Safety re-arm**: a CLOSED valve never opens by itself. When credit returns (and no tamper is latched) it
  becomes ARMED, and only :meth:`SimulatedMeter.press_button` opens it, so gas never flows into a burner
  left open when the supply stopped. While the valve is not OPEN no gas flows.
* **Emergency credit**: once credit is low (below the low-credit threshold) or exhausted, the customer may
  take the configured emergency amount once; it is added to the register, so the valve closes at the floor
  of the emergency credit (register zero). It cannot be taken again until it is repaid.
* **Repayment**: the next credit (a token) first repays the emergency credit, then the friendly debt; what
  is left is the customer's credit. Hence the conservation law, in the register's unit::

      loaded - charged - cleared == credit - emergency_owed - friendly_debt

* **Tokens** go through :class:`citygas.sts.MeterTokenAcceptor` unchanged (TID memory, Old/Used, key type,
  key expiry, key change sets, keypad lockout with back-off). The keypad lockout runs on the meter's
  uptime, which setting the clock does not move, so a clock correction neither shortens nor extends it.
* **SetTariffRate** (2/2): citygas convention, the raw 16-bit Rate field is the tariff in paise per SCM
  (up to Rs 655.35/SCM); a zero rate is ignored.
* **ClearCredit** (2/1) clears the credit register (register id = subclass, or 0xFFFF for all) but not the
  emergency credit owed nor the friendly debt; what it removed counts as ``cleared``.
* **Snapshots**: as the clock passes midnight IST the meter records a daily snapshot (last 90 kept), and at
  a month end a monthly one (last 24). Setting the clock (:meth:`SimulatedMeter.set_clock`) is a correction,
  not the passing of time: days it skips get no snapshot.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from datetime import UTC, date, datetime, timedelta
from typing import Final

from citygas import sts
from citygas.meters.types import (
    Alarm,
    EventCode,
    MeterEvent,
    MeterIdentity,
    MeterMode,
    MeterParameters,
    MeterStatus,
    Registers,
    Snapshot,
    TokenEntry,
    ValveState,
)

__all__ = [
    "DAILY_SNAPSHOTS_KEPT",
    "EVENTS_KEPT",
    "G16_QMAX_LITRES_PER_HOUR",
    "MONTHLY_SNAPSHOTS_KEPT",
    "EmergencyCreditRefused",
    "InvalidMeterParameters",
    "MeterClockError",
    "SimulatedMeter",
]

G16_QMAX_LITRES_PER_HOUR: Final = 2_500
EVENTS_KEPT: Final = 200
DAILY_SNAPSHOTS_KEPT: Final = 90
MONTHLY_SNAPSHOTS_KEPT: Final = 24

_STATE_VERSION: Final = 1
_IST_OFFSET: Final = 19_800  # Asia/Kolkata is UTC+05:30 all year
_DAY: Final = 86_400
_HOUR: Final = 3_600
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_MILLI: Final = 1_000  # litres per SCM, and thousandths of a paisa per paisa

# Alarms that close the valve until a ClearTamperCondition token is accepted.
_VALVE_CLOSING_ALARMS: Final = frozenset({Alarm.MAGNET_TAMPER, Alarm.CASE_OPEN, Alarm.VALVE_FAULT})
# What the simulator and the tests may inject, and the alarm each one latches.
_INJECTABLE: Final = {
    EventCode.MAGNET_TAMPER: Alarm.MAGNET_TAMPER,
    EventCode.CASE_OPEN: Alarm.CASE_OPEN,
    EventCode.LOW_BATTERY: Alarm.LOW_BATTERY,
    EventCode.VALVE_FAULT: Alarm.VALVE_FAULT,
    EventCode.REVERSE_FLOW: Alarm.REVERSE_FLOW,
    EventCode.FLOW_ABOVE_QMAX: Alarm.FLOW_ABOVE_QMAX,
}
_BASE_UNIT: Final = {MeterMode.CURRENCY: "paisa", MeterMode.VOLUME: "litre"}


class EmergencyCreditRefused(Exception):
    """The customer asked for emergency credit the meter may not give now."""


class InvalidMeterParameters(ValueError):
    """Parameters (or a tariff) the meter cannot work with."""


class MeterClockError(ValueError):
    """A naive time, or time asked to run backwards (use set_clock to correct the clock)."""


def _seconds(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise MeterClockError("the meter clock takes timezone-aware datetimes (UTC)")
    return (moment - _EPOCH) // timedelta(seconds=1)


def _datetime(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def _ist_date_of_day(day_number: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + day_number)


def _check_parameters(parameters: MeterParameters) -> None:
    if parameters.low_credit_threshold < 0:
        raise InvalidMeterParameters("the low-credit threshold cannot be negative")
    if parameters.emergency_credit < 0:
        raise InvalidMeterParameters("the emergency credit cannot be negative")
    if parameters.friendly_hours is not None:
        start, end = parameters.friendly_hours
        if not (0 <= start <= 23 and 0 <= end <= 23):
            raise InvalidMeterParameters(f"friendly hours {parameters.friendly_hours} must be hours 0..23")


class SimulatedMeter:
    """One prepaid gas meter: credit, valve, tokens, alarms, events, registers, snapshots and a clock."""

    def __init__(
        self,
        identity: MeterIdentity,
        parameters: MeterParameters,
        *,
        tariff_paise_per_scm: int,
        decoder_key: sts.DecoderKey,
        start: datetime,
        ken: int = 255,
        key_type: int = sts.KeyType.DUTK,
        convention: sts.AmountConvention | None = None,
        qmax_litres_per_hour: int = G16_QMAX_LITRES_PER_HOUR,
        sta_tables: sts.StaTables | None = None,
    ) -> None:
        if convention is None:
            convention = (
                sts.GAS_CURRENCY_TENTH_RUPEE
                if identity.mode is MeterMode.CURRENCY
                else sts.GAS_VOLUME_TENTH_SCM
            )
        if convention.base_unit != _BASE_UNIT[identity.mode]:
            raise InvalidMeterParameters(
                f"a {identity.mode.value}-mode meter needs credit in {_BASE_UNIT[identity.mode]}s, "
                f"not {convention.base_unit}s"
            )
        _check_parameters(parameters)
        self._check_tariff(tariff_paise_per_scm, identity.mode)
        state = sts.DecoderState(
            decoder_key=decoder_key.material(),
            ea=decoder_key.ea,
            kt=key_type,
            krn=identity.krn,
            ti=identity.ti,
            sgc=int(identity.sgc),
            ken=ken,
            base_date=identity.base_date,
        )
        self._identity = identity
        self._params = parameters
        self._tariff = tariff_paise_per_scm
        self._convention = convention
        self._qmax = qmax_litres_per_hour
        self._acceptor = self._make_acceptor(state, sta_tables)
        self._t = _seconds(start)
        self._uptime = 0
        self._credit = 0
        self._carry = 0  # thousandths of a paisa consumed but not yet charged (currency mode)
        self._emergency_owed = 0
        self._friendly_debt = 0
        self._valve = ValveState.CLOSED  # a meter leaves the factory closed, with no credit
        self._latched: set[Alarm] = set()
        self._low_credit_signalled = parameters.low_credit_threshold > 0  # a new meter starts with none
        self._cumulative_litres = 0
        self._loaded = 0
        self._charged = 0
        self._cleared = 0
        self._tokens_accepted = 0
        self._seq = 0
        self._events: deque[MeterEvent] = deque(maxlen=EVENTS_KEPT)
        self._daily: deque[Snapshot] = deque(maxlen=DAILY_SNAPSHOTS_KEPT)
        self._monthly: deque[Snapshot] = deque(maxlen=MONTHLY_SNAPSHOTS_KEPT)
        self._last_token: TokenEntry | None = None
        self._holidays: frozenset[int] = frozenset()
        self._next_midnight = 0
        self._next_boundary = 0
        self._apply_parameters(parameters)
        self._reset_calendar()

    def __repr__(self) -> str:
        return (
            f"SimulatedMeter({self._identity.sts_meter_number}, {self._identity.mode.value}, "
            f"credit {self._credit}, valve {self._valve.value}, <key hidden>)"
        )

    # --- reading the meter ----------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The meter clock."""
        return _datetime(self._t)

    @property
    def credit(self) -> int:
        """The credit register (paise or litres); cheaper than status() for the fleet simulator."""
        return self._credit

    @property
    def valve(self) -> ValveState:
        return self._valve

    def identity(self) -> MeterIdentity:
        return self._identity

    def parameters(self) -> MeterParameters:
        return self._params

    def status(self) -> MeterStatus:
        return MeterStatus(
            at=_datetime(self._t),
            mode=self._identity.mode,
            credit=self._credit,
            emergency_credit_available=self._params.emergency_credit > 0 and self._emergency_owed == 0,
            emergency_credit_in_use=self._emergency_owed,
            valve=self._valve,
            alarms=self._alarms(),
            tariff_paise_per_scm=self._tariff,
            friendly_debt=self._friendly_debt,
        )

    def registers(self) -> Registers:
        return Registers(
            cumulative_litres=self._cumulative_litres,
            cumulative_credit_loaded=self._loaded,
            tokens_accepted=self._tokens_accepted,
        )

    def money_counters(self) -> dict[str, int]:
        """The totals behind the conservation law (register unit): loaded, charged, cleared, carry."""
        return {
            "loaded": self._loaded,
            "charged": self._charged,
            "cleared": self._cleared,
            "carry_thousandths": self._carry,
        }

    def daily_snapshots(self) -> list[Snapshot]:
        return list(self._daily)

    def monthly_snapshots(self) -> list[Snapshot]:
        return list(self._monthly)

    def events(self, after_seq: int = 0, limit: int = 50) -> list[MeterEvent]:
        """Events with ``seq > after_seq``, oldest first, at most ``limit`` (the log keeps the last 200)."""
        if limit <= 0:
            return []
        found: list[MeterEvent] = []
        for event in self._events:
            if event.seq > after_seq:
                found.append(event)
                if len(found) == limit:
                    break
        return found

    def last_token(self) -> TokenEntry | None:
        return self._last_token

    def is_friendly_now(self) -> bool:
        return self._is_friendly(self._t)

    # --- time and gas -----------------------------------------------------------------------

    def advance_clock(self, to: datetime) -> None:
        """Let time pass to ``to`` with no gas used, taking snapshots and ending friendly periods."""
        target = _seconds(to)
        if target < self._t:
            raise MeterClockError(
                f"time cannot run backwards from {self.now.isoformat()} to {to.isoformat()}; use set_clock"
            )
        self._advance_to(target)

    def wait(self, seconds: int) -> None:
        """Let ``seconds`` pass with no gas used."""
        if seconds < 0:
            raise MeterClockError("cannot wait a negative time")
        self._advance_to(self._t + seconds)

    def consume(self, litres: int, over_seconds: int) -> int:
        """Demand ``litres`` at an even flow over the next ``over_seconds``; return the litres that flowed.

        Credit is drawn down as the gas flows. If the valve is not OPEN nothing flows; if it closes part
        way (credit exhausted outside a friendly period, or a friendly period ending in debt) the rest of
        the demand is not met. The clock ends ``over_seconds`` later either way.
        """
        if litres < 0 or over_seconds < 0:
            raise ValueError("litres and seconds cannot be negative")
        if litres and not over_seconds:
            raise ValueError("gas cannot flow in zero time")
        start = self._t
        end = start + over_seconds
        if litres * _HOUR > self._qmax * over_seconds:
            self._raise_alarm(
                EventCode.FLOW_ABOVE_QMAX, f"{litres * _HOUR // over_seconds} L/h above Qmax {self._qmax} L/h"
            )
        delivered = 0
        while self._t < end:
            if self._valve is not ValveState.OPEN or not litres:
                self._advance_to(end)
                break
            segment_end = min(end, self._next_boundary)
            due = litres * (segment_end - start) // over_seconds - delivered
            step = due if self._is_friendly(self._t) else min(due, self._affordable_litres())
            if not self._low_credit_signalled and self._params.low_credit_threshold:
                # Stop at the litre that takes the credit below the threshold, so the alarm has its time.
                step = min(step, self._litres_until_low_credit())
            if step:
                self._deliver(step)
                delivered += step
            if step < due:
                # The flow stops being metered here: the alarm's moment, or the valve's closing.
                stops_at = start - (-delivered * over_seconds // litres)
                self._advance_to(max(self._t, min(stops_at, segment_end)))
            else:
                self._advance_to(segment_end)
            self._signal_low_credit()
            self._update_valve()
        return delivered

    def set_clock(self, to: datetime) -> None:
        """Correct the meter clock (time sync). Skipped days get no snapshots; the lockout is unmoved."""
        target = _seconds(to)
        before = self._t
        self._t = target
        self._reset_calendar()
        self._log(EventCode.CLOCK_SET, f"{_datetime(before).isoformat()} -> {to.astimezone(UTC).isoformat()}")
        self._update_valve()

    # --- the customer's buttons and keypad ---------------------------------------------------

    def press_button(self) -> ValveState:
        """The re-arm button: opens an ARMED valve; otherwise changes nothing. Returns the valve state."""
        if self._valve is ValveState.ARMED and not self._closing_reason_when_armed():
            self._valve = ValveState.OPEN
            self._log(EventCode.VALVE_OPENED, "button pressed")
        return self._valve

    def take_emergency_credit(self) -> int:
        """Add the emergency credit to the register, once until repaid; returns the amount added."""
        amount = self._params.emergency_credit
        if amount <= 0:
            raise EmergencyCreditRefused("this meter is set up without emergency credit")
        if self._emergency_owed:
            raise EmergencyCreditRefused(
                "emergency credit is already in use; a top-up must repay it before it can be taken again"
            )
        if self._credit >= self._params.low_credit_threshold and not self._exhausted():
            raise EmergencyCreditRefused("emergency credit is offered only when the credit is low")
        self._credit += amount
        self._emergency_owed = amount
        self._log(EventCode.EMERGENCY_CREDIT_TAKEN, str(amount))
        self._after_credit_change()
        return amount

    def enter_token(self, token: str) -> sts.AcceptResult:
        """Type a 20-digit token on the keypad; the STS decoder rules decide, then the meter applies it."""
        state = self._acceptor.state
        per_count = self._convention.base_units_per_count
        # The decoder's own register (in counts) mirrors ours, so its overflow check sees the real balance.
        state.credit = {self._convention.subclass: self._credit // per_count}
        state.tamper_latched = bool(self._latched & _VALVE_CLOSING_ALARMS)
        result = self._acceptor.accept(token, now=float(self._uptime))
        added = 0
        if result.outcome is sts.AcceptOutcome.CREDIT_ADDED and result.credit_added is not None:
            added = self._convention.to_base_units(result.credit_added)
            self._load_credit(added)
        elif result.outcome is sts.AcceptOutcome.MANAGEMENT_APPLIED and isinstance(
            result.token, sts.ManagementToken
        ):
            self._apply_management(result.token)
        elif result.outcome is sts.AcceptOutcome.KEY_CHANGED:
            self._identity = dataclasses.replace(
                self._identity, krn=state.krn, ti=state.ti, base_date=state.base_date, sgc=f"{state.sgc:06d}"
            )
            self._log(EventCode.KEY_CHANGED, result.detail)
        # The TID in the (signed) event lets the platform tell which vend's token the meter took; a used_error
        # with its TID proves the meter took that token earlier. Key change and test tokens carry none.
        tid = result.token.tid if isinstance(result.token, sts.CreditToken | sts.ManagementToken) else None
        tid_text = f" tid={tid}" if tid is not None else ""
        if result.accepted:
            self._tokens_accepted += 1
            self._log(
                EventCode.TOKEN_ACCEPTED, result.outcome.value + (f" +{added}" if added else "") + tid_text
            )
        else:
            self._log(EventCode.TOKEN_REJECTED, result.outcome.value + tid_text)
        self._last_token = TokenEntry(
            at=_datetime(self._t),
            outcome=result.outcome.value,
            accepted=result.accepted,
            credit_added=added,
            detail=result.detail,
        )
        self._after_credit_change()
        return result

    # --- the platform and the simulator -----------------------------------------------------

    def inject(self, code: EventCode, detail: str = "") -> None:
        """A sensor event (simulator and tests): logs it and latches its alarm until cleared."""
        alarm = _INJECTABLE.get(code)
        if alarm is None:
            raise ValueError(f"{code.value} is not a sensor event; inject one of {sorted(_INJECTABLE)}")
        self._raise_alarm(code, detail)
        self._update_valve()

    def set_parameters(self, parameters: MeterParameters) -> None:
        _check_parameters(parameters)
        self._apply_parameters(parameters)
        self._reset_calendar()
        self._log(EventCode.PARAMETERS_CHANGED)
        self._after_credit_change()

    def set_tariff(self, paise_per_scm: int) -> None:
        """The rate held on the meter, as the platform sets it over the meter link."""
        self._check_tariff(paise_per_scm, self._identity.mode)
        self._tariff = paise_per_scm
        self._log(EventCode.TARIFF_CHANGED, str(paise_per_scm))
        self._after_credit_change()

    # --- persistence ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """A JSON-able image of the whole meter.

        It contains the DecoderState, and so the meter's decoder key: store it as a secret, never log it.
        """
        state = self._acceptor.state
        state.credit = {self._convention.subclass: self._credit // self._convention.base_units_per_count}
        identity = dataclasses.asdict(self._identity)
        identity["mode"] = self._identity.mode.value
        return {
            "version": _STATE_VERSION,
            "identity": identity,
            "parameters": {
                "low_credit_threshold": self._params.low_credit_threshold,
                "emergency_credit": self._params.emergency_credit,
                "friendly_hours": list(self._params.friendly_hours) if self._params.friendly_hours else None,
                "friendly_holidays": [d.isoformat() for d in self._params.friendly_holidays],
            },
            "tariff_paise_per_scm": self._tariff,
            "convention": {
                "subclass": self._convention.subclass,
                "base_unit": self._convention.base_unit,
                "base_units_per_count": self._convention.base_units_per_count,
            },
            "qmax_litres_per_hour": self._qmax,
            "decoder_state": state.to_dict(),  # holds the decoder key
            "clock": self._t,
            "uptime": self._uptime,
            "credit": self._credit,
            "carry": self._carry,
            "emergency_owed": self._emergency_owed,
            "friendly_debt": self._friendly_debt,
            "valve": self._valve.value,
            "latched_alarms": sorted(a.value for a in self._latched),
            "low_credit_signalled": self._low_credit_signalled,
            "cumulative_litres": self._cumulative_litres,
            "loaded": self._loaded,
            "charged": self._charged,
            "cleared": self._cleared,
            "tokens_accepted": self._tokens_accepted,
            "seq": self._seq,
            "events": [[e.seq, _seconds(e.at), e.code.value, e.detail] for e in self._events],
            "daily": [[s.period_end.isoformat(), s.cumulative_litres, s.credit] for s in self._daily],
            "monthly": [[s.period_end.isoformat(), s.cumulative_litres, s.credit] for s in self._monthly],
            "last_token": None
            if self._last_token is None
            else {
                "at": _seconds(self._last_token.at),
                "outcome": self._last_token.outcome,
                "accepted": self._last_token.accepted,
                "credit_added": self._last_token.credit_added,
                "detail": self._last_token.detail,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, object], *, sta_tables: sts.StaTables | None = None) -> SimulatedMeter:
        if data.get("version") != _STATE_VERSION:
            raise ValueError(f"meter state version {data.get('version')!r} is not {_STATE_VERSION}")
        try:
            return cls._restore(data, sta_tables)
        except KeyError as exc:
            raise ValueError(f"meter state lacks {exc.args[0]!r}") from exc

    @classmethod
    def _restore(cls, data: dict[str, object], sta_tables: sts.StaTables | None) -> SimulatedMeter:
        raw_identity = _as_dict(data["identity"])
        identity = MeterIdentity(
            serial=str(raw_identity["serial"]),
            sts_meter_number=str(raw_identity["sts_meter_number"]),
            model=str(raw_identity["model"]),
            manufacturer_code=_as_int(raw_identity["manufacturer_code"]),
            firmware=str(raw_identity["firmware"]),
            mode=MeterMode(str(raw_identity["mode"])),
            sgc=str(raw_identity["sgc"]),
            krn=_as_int(raw_identity["krn"]),
            ti=_as_int(raw_identity["ti"]),
            base_date=_as_int(raw_identity["base_date"]),
        )
        raw_params = _as_dict(data["parameters"])
        hours = raw_params["friendly_hours"]
        friendly_hours: tuple[int, int] | None = None
        if hours is not None:
            start_hour, end_hour = _as_list(hours)
            friendly_hours = (_as_int(start_hour), _as_int(end_hour))
        parameters = MeterParameters(
            low_credit_threshold=_as_int(raw_params["low_credit_threshold"]),
            emergency_credit=_as_int(raw_params["emergency_credit"]),
            friendly_hours=friendly_hours,
            friendly_holidays=tuple(
                date.fromisoformat(str(d)) for d in _as_list(raw_params["friendly_holidays"])
            ),
        )
        raw_convention = _as_dict(data["convention"])
        meter = cls.__new__(cls)
        meter._identity = identity
        meter._params = parameters
        meter._tariff = _as_int(data["tariff_paise_per_scm"])
        meter._convention = sts.AmountConvention(
            subclass=_as_int(raw_convention["subclass"]),
            base_unit=str(raw_convention["base_unit"]),
            base_units_per_count=_as_int(raw_convention["base_units_per_count"]),
        )
        meter._qmax = _as_int(data["qmax_litres_per_hour"])
        state = sts.DecoderState.from_dict(_as_dict(data["decoder_state"]))
        meter._acceptor = meter._make_acceptor(state, sta_tables)
        meter._t = _as_int(data["clock"])
        meter._uptime = _as_int(data["uptime"])
        meter._credit = _as_int(data["credit"])
        meter._carry = _as_int(data["carry"])
        meter._emergency_owed = _as_int(data["emergency_owed"])
        meter._friendly_debt = _as_int(data["friendly_debt"])
        meter._valve = ValveState(str(data["valve"]))
        meter._latched = {Alarm(str(a)) for a in _as_list(data["latched_alarms"])}
        meter._low_credit_signalled = bool(data["low_credit_signalled"])
        meter._cumulative_litres = _as_int(data["cumulative_litres"])
        meter._loaded = _as_int(data["loaded"])
        meter._charged = _as_int(data["charged"])
        meter._cleared = _as_int(data["cleared"])
        meter._tokens_accepted = _as_int(data["tokens_accepted"])
        meter._seq = _as_int(data["seq"])
        meter._events = deque(
            (
                MeterEvent(seq=_as_int(s), at=_datetime(_as_int(t)), code=EventCode(str(c)), detail=str(d))
                for s, t, c, d in (_as_list(row) for row in _as_list(data["events"]))
            ),
            maxlen=EVENTS_KEPT,
        )
        meter._daily = deque(_snapshots(data["daily"]), maxlen=DAILY_SNAPSHOTS_KEPT)
        meter._monthly = deque(_snapshots(data["monthly"]), maxlen=MONTHLY_SNAPSHOTS_KEPT)
        raw_last = data["last_token"]
        meter._last_token = None
        if raw_last is not None:
            last = _as_dict(raw_last)
            meter._last_token = TokenEntry(
                at=_datetime(_as_int(last["at"])),
                outcome=str(last["outcome"]),
                accepted=bool(last["accepted"]),
                credit_added=_as_int(last["credit_added"]),
                detail=str(last["detail"]),
            )
        meter._holidays = frozenset()
        meter._next_midnight = 0
        meter._next_boundary = 0
        meter._apply_parameters(parameters)
        meter._reset_calendar()
        return meter

    # --- internals --------------------------------------------------------------------------

    def _make_acceptor(
        self, state: sts.DecoderState, sta_tables: sts.StaTables | None
    ) -> sts.MeterTokenAcceptor:
        config = sts.MeterConfig(
            credit_subclasses=frozenset({self._convention.subclass}),
            manufacturer_code=self._identity.manufacturer_code,
        )
        return sts.MeterTokenAcceptor(state, config, sta_tables=sta_tables)

    @staticmethod
    def _check_tariff(paise_per_scm: int, mode: MeterMode) -> None:
        if paise_per_scm < 0 or (mode is MeterMode.CURRENCY and paise_per_scm == 0):
            raise InvalidMeterParameters(
                f"a tariff of {paise_per_scm} paise per SCM cannot price gas; it must be positive"
            )

    def _apply_parameters(self, parameters: MeterParameters) -> None:
        self._params = parameters
        self._holidays = frozenset(d.toordinal() - _EPOCH_ORDINAL for d in parameters.friendly_holidays)

    def _reset_calendar(self) -> None:
        local = self._t + _IST_OFFSET
        self._next_midnight = local - local % _DAY + _DAY - _IST_OFFSET
        self._next_boundary = self._boundary_after(self._t)

    def _boundary_after(self, t: int) -> int:
        """The next moment after ``t`` when the day or the friendly-hours status may change."""
        local = t + _IST_OFFSET
        day_start = local - local % _DAY
        boundary = day_start + _DAY
        hours = self._params.friendly_hours
        if hours is not None:
            for hour in hours:
                edge = day_start + hour * _HOUR
                if local < edge < boundary:
                    boundary = edge
        return boundary - _IST_OFFSET

    def _is_friendly(self, t: int) -> bool:
        local = t + _IST_OFFSET
        if self._holidays and local // _DAY in self._holidays:
            return True
        hours = self._params.friendly_hours
        if hours is None:
            return False
        start, end = hours
        hour = local % _DAY // _HOUR
        if start > end:  # the period spans midnight, as 22:00-06:00 does
            return hour >= start or hour < end
        return start <= hour < end

    def _advance_to(self, target: int) -> None:
        while self._next_boundary <= target:
            boundary = self._next_boundary
            self._uptime += boundary - self._t
            self._t = boundary
            if boundary == self._next_midnight:
                self._close_day(boundary)
                self._next_midnight += _DAY
            self._next_boundary = self._boundary_after(boundary)
            self._update_valve()
        self._uptime += target - self._t
        self._t = target

    def _close_day(self, midnight: int) -> None:
        ended = (midnight + _IST_OFFSET) // _DAY - 1
        day = _ist_date_of_day(ended)
        snapshot = Snapshot(period_end=day, cumulative_litres=self._cumulative_litres, credit=self._credit)
        self._daily.append(snapshot)
        if _ist_date_of_day(ended + 1).day == 1:
            self._monthly.append(snapshot)

    def _affordable_litres(self) -> int:
        if self._identity.mode is MeterMode.VOLUME:
            return self._credit
        # The largest L with floor((carry + L x tariff) / 1000) <= credit.
        return ((self._credit + 1) * _MILLI - 1 - self._carry) // self._tariff

    def _litres_until_low_credit(self) -> int:
        """The litre that takes the credit below the low-credit threshold (credit is at or above it now)."""
        margin = self._credit - self._params.low_credit_threshold
        if self._identity.mode is MeterMode.VOLUME:
            return margin + 1
        return ((margin + 1) * _MILLI - 1 - self._carry) // self._tariff + 1

    def _exhausted(self) -> bool:
        return self._affordable_litres() == 0

    def _deliver(self, litres: int) -> None:
        self._cumulative_litres += litres
        if self._identity.mode is MeterMode.CURRENCY:
            charge, self._carry = divmod(self._carry + litres * self._tariff, _MILLI)
        else:
            charge = litres
        self._charged += charge
        paid = min(charge, self._credit)
        self._credit -= paid
        # Only in a friendly period can the charge exceed the credit: the rest is owed.
        self._friendly_debt += charge - paid

    def _load_credit(self, amount: int) -> None:
        self._loaded += amount
        self._credit += amount
        if self._emergency_owed:
            repaid = min(self._emergency_owed, self._credit)
            self._credit -= repaid
            self._emergency_owed -= repaid
            if not self._emergency_owed:
                self._log(EventCode.EMERGENCY_CREDIT_REPAID, str(self._params.emergency_credit))
        if self._friendly_debt:
            repaid = min(self._friendly_debt, self._credit)
            self._credit -= repaid
            self._friendly_debt -= repaid

    def _apply_management(self, token: sts.ManagementToken) -> None:
        subclass = token.subclass
        if subclass == sts.ManagementSubclass.CLEAR_CREDIT:
            if token.value16 in (sts.ALL_REGISTERS, self._convention.subclass):
                self._cleared += self._credit
                self._credit = 0
        elif subclass == sts.ManagementSubclass.SET_TARIFF_RATE:
            if token.value16 > 0:
                self._tariff = token.value16
                self._log(EventCode.TARIFF_CHANGED, str(token.value16))
        elif subclass == sts.ManagementSubclass.CLEAR_TAMPER_CONDITION and self._latched:
            cleared = ",".join(sorted(a.value for a in self._latched))
            self._latched.clear()
            self._log(EventCode.TAMPER_CLEARED, cleared)

    def _raise_alarm(self, code: EventCode, detail: str) -> None:
        self._latched.add(_INJECTABLE[code])
        self._log(code, detail)

    def _after_credit_change(self) -> None:
        self._signal_low_credit()
        self._update_valve()

    def _signal_low_credit(self) -> None:
        low = self._credit < self._params.low_credit_threshold
        if low and not self._low_credit_signalled:
            self._log(EventCode.LOW_CREDIT, str(self._credit))
        self._low_credit_signalled = low

    def _closing_reason_when_armed(self) -> str | None:
        if self._latched & _VALVE_CLOSING_ALARMS:
            return "tamper"
        if self._exhausted():
            return "no credit"
        return None

    def _update_valve(self) -> None:
        valve = self._valve
        if valve is ValveState.OPEN:
            if self._latched & _VALVE_CLOSING_ALARMS:
                self._close_valve("tamper")
            elif self._exhausted() and not self._is_friendly(self._t):
                self._close_valve("no credit")
        elif valve is ValveState.ARMED:
            reason = self._closing_reason_when_armed()
            if reason:
                self._close_valve(reason)
        elif not self._closing_reason_when_armed():
            self._valve = ValveState.ARMED
            self._log(EventCode.VALVE_ARMED, "press the button to open")

    def _close_valve(self, reason: str) -> None:
        self._valve = ValveState.CLOSED
        self._log(EventCode.VALVE_CLOSED, reason)

    def _alarms(self) -> frozenset[Alarm]:
        alarms = set(self._latched)
        if self._credit < self._params.low_credit_threshold:
            alarms.add(Alarm.LOW_CREDIT)
        if self._exhausted():
            alarms.add(Alarm.CREDIT_EXHAUSTED)
        if self._emergency_owed:
            alarms.add(Alarm.EMERGENCY_CREDIT_IN_USE)
        if self._uptime < self._acceptor.state.locked_until:
            alarms.add(Alarm.KEYPAD_LOCKED)
        return frozenset(alarms)

    def _log(self, code: EventCode, detail: str = "") -> None:
        self._seq += 1
        self._events.append(MeterEvent(seq=self._seq, at=_datetime(self._t), code=code, detail=detail))


def _snapshots(raw: object) -> list[Snapshot]:
    return [
        Snapshot(
            period_end=date.fromisoformat(str(day)), cumulative_litres=_as_int(litres), credit=_as_int(credit)
        )
        for day, litres, credit in (_as_list(row) for row in _as_list(raw))
    ]


def _as_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _as_list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {value!r}")
    return value


def _as_dict(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {value!r}")
    return value
