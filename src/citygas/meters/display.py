"""What the meter's LCD shows: a few short upper-case lines for a status and the last token typed.

The simulator's web page renders these lines; a real meter's display says the same things in fewer pixels.
"""

from __future__ import annotations

from typing import Final

from citygas.meters.types import Alarm, MeterMode, MeterStatus, TokenEntry, ValveState
from citygas.platform.money import format_inr

__all__ = ["ALARM_TEXT", "format_credit", "lcd_lines"]

# Sensor alarms carry an error number, as a meter's display does, so a caller can read it out to care.
ALARM_TEXT: Final = {
    Alarm.LOW_CREDIT: "LOW CREDIT",
    Alarm.CREDIT_EXHAUSTED: "NO CREDIT",
    Alarm.EMERGENCY_CREDIT_IN_USE: "EMERGENCY CREDIT",
    Alarm.MAGNET_TAMPER: "E1 MAGNET TAMPER",
    Alarm.CASE_OPEN: "E2 CASE OPEN",
    Alarm.LOW_BATTERY: "E3 LOW BATTERY",
    Alarm.VALVE_FAULT: "E4 VALVE FAULT",
    Alarm.REVERSE_FLOW: "E5 REVERSE FLOW",
    Alarm.FLOW_ABOVE_QMAX: "E6 FLOW ABOVE QMAX",
    Alarm.KEYPAD_LOCKED: "KEYPAD LOCKED",
}
_ALARM_ORDER: Final = tuple(ALARM_TEXT)

_VALVE_TEXT: Final = {
    ValveState.OPEN: "VALVE OPEN",
    ValveState.CLOSED: "VALVE CLOSED",
    ValveState.ARMED: "PRESS BUTTON",
}

_REJECTION_TEXT: Final = {
    "locked_out": "KEYPAD LOCKED",
    "format_error": "FORMAT",
    "crc_error": "INVALID",
    "class_error": "NOT ACCEPTED",
    "manufacturer_error": "OTHER MAKER",
    "key_type_error": "KEY TYPE",
    "key_expired_error": "KEY EXPIRED",
    "old_error": "OLD",
    "used_error": "USED",
    "range_error": "RANGE",
    "overflow_error": "OVERFLOW",
}


def format_credit(amount: int, mode: MeterMode) -> str:
    """Paise as '₹1,234.56' (currency mode) or litres as '12.345 SCM' (volume mode)."""
    if mode is MeterMode.CURRENCY:
        return format_inr(amount)
    scm, litres = divmod(amount, 1000)
    return f"{scm}.{litres:03d} SCM"


def lcd_lines(status: MeterStatus, last_token: TokenEntry | None = None) -> list[str]:
    """The LCD for ``status``: credit, debts, valve, alarms, then the result of the last token if any."""
    lines = [f"CREDIT {format_credit(status.credit, status.mode)}"]
    if status.emergency_credit_in_use:
        lines.append(f"EMERGENCY {format_credit(status.emergency_credit_in_use, status.mode)}")
    if status.friendly_debt:
        lines.append(f"DEBT {format_credit(status.friendly_debt, status.mode)}")
    lines.append(_VALVE_TEXT[status.valve])
    lines.extend(ALARM_TEXT[alarm] for alarm in _ALARM_ORDER if alarm in status.alarms)
    if last_token is not None:
        lines.append(_token_line(last_token, status.mode))
    return lines


def _token_line(entry: TokenEntry, mode: MeterMode) -> str:
    if not entry.accepted:
        return f"REJECTED: {_REJECTION_TEXT.get(entry.outcome, entry.outcome.upper())}"
    if entry.credit_added:
        return f"ACCEPTED +{format_credit(entry.credit_added, mode)}"
    if entry.outcome == "key_change_section_stored":
        return "ACCEPTED: ENTER NEXT KEY TOKEN"
    if entry.outcome == "key_changed":
        return "ACCEPTED: NEW KEY"
    return "ACCEPTED"
