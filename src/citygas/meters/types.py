"""What a meter says about itself: the shared vocabulary of the meter model, the meter-link protocol, the
registry and the apps. Pure data, no behaviour.

Units: gas in integer litres at standard conditions, money in integer paise, times as aware UTC
datetimes in Python (Unix seconds on the wire).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class MeterMode(StrEnum):
    CURRENCY = "currency"  # the credit register holds paise; the meter prices gas with its tariff rate
    VOLUME = "volume"  # the credit register holds litres of gas


class ValveState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # no credit (or a fault/tamper): gas cannot flow
    ARMED = "armed"  # credit is back but the valve waits for the customer's button press (safety re-arm)


class Alarm(StrEnum):
    LOW_CREDIT = "low_credit"
    CREDIT_EXHAUSTED = "credit_exhausted"
    EMERGENCY_CREDIT_IN_USE = "emergency_credit_in_use"
    MAGNET_TAMPER = "magnet_tamper"
    CASE_OPEN = "case_open"
    LOW_BATTERY = "low_battery"
    VALVE_FAULT = "valve_fault"
    REVERSE_FLOW = "reverse_flow"
    FLOW_ABOVE_QMAX = "flow_above_qmax"
    KEYPAD_LOCKED = "keypad_locked"


class EventCode(StrEnum):
    TOKEN_ACCEPTED = "token_accepted"  # noqa: S105 - an event name, not a password
    TOKEN_REJECTED = "token_rejected"  # noqa: S105 - an event name, not a password
    VALVE_OPENED = "valve_opened"
    VALVE_CLOSED = "valve_closed"
    VALVE_ARMED = "valve_armed"
    EMERGENCY_CREDIT_TAKEN = "emergency_credit_taken"
    EMERGENCY_CREDIT_REPAID = "emergency_credit_repaid"
    LOW_CREDIT = "low_credit"
    MAGNET_TAMPER = "magnet_tamper"
    CASE_OPEN = "case_open"
    TAMPER_CLEARED = "tamper_cleared"
    LOW_BATTERY = "low_battery"
    VALVE_FAULT = "valve_fault"
    REVERSE_FLOW = "reverse_flow"
    FLOW_ABOVE_QMAX = "flow_above_qmax"
    KEY_CHANGED = "key_changed"
    TARIFF_CHANGED = "tariff_changed"
    PARAMETERS_CHANGED = "parameters_changed"
    CLOCK_SET = "clock_set"


@dataclass(frozen=True)
class MeterIdentity:
    serial: str
    sts_meter_number: str  # 18 digits with the Luhn check digit (the STS PAN)
    model: str  # e.g. "G1.6"
    manufacturer_code: int
    firmware: str
    mode: MeterMode
    sgc: str
    krn: int
    ti: int
    base_date: int  # 1993, 2014 or 2035


@dataclass(frozen=True)
class MeterStatus:
    at: datetime  # the meter clock when the status was taken
    mode: MeterMode
    credit: int  # paise (currency mode) or litres (volume mode); never negative
    emergency_credit_available: bool
    emergency_credit_in_use: int  # owed back from the next credit, same unit as `credit`
    valve: ValveState
    alarms: frozenset[Alarm]
    tariff_paise_per_scm: int  # the rate held on the meter (currency mode prices gas with it)
    # Gas let through in a friendly period after credit ran out, owed back from the next credit (same unit
    # as `credit`). Added by the meter model; defaults to 0 so older producers stay valid.
    friendly_debt: int = 0


@dataclass(frozen=True)
class Registers:
    cumulative_litres: int
    cumulative_credit_loaded: int  # same unit as the credit register
    tokens_accepted: int


@dataclass(frozen=True)
class Snapshot:
    """Register values at the end of a day (daily) or a month (monthly), meter clock."""

    period_end: date
    cumulative_litres: int
    credit: int


@dataclass(frozen=True)
class MeterEvent:
    seq: int  # increases by one per event for the life of the meter; the log keeps the latest N
    at: datetime
    code: EventCode
    detail: str = ""


@dataclass(frozen=True)
class TokenEntry:
    """The result of the last token typed on the keypad, as the LCD shows it."""

    at: datetime
    outcome: str  # a citygas.sts.AcceptOutcome value, e.g. "credit_added", "used_error"
    accepted: bool
    credit_added: int = 0  # paise or litres (the credit register's unit) that the token added
    detail: str = ""


@dataclass(frozen=True)
class MeterParameters:
    """Settings the platform may change over the link, with a signature the meter checks."""

    low_credit_threshold: int  # alarm below this credit (paise or litres)
    emergency_credit: int  # how much emergency credit the customer may take once (0 = none)
    friendly_hours: tuple[int, int] | None = (22, 6)  # no closure from 22:00 to 06:00 local time
    friendly_holidays: tuple[date, ...] = field(default_factory=tuple)  # no closure on these days
