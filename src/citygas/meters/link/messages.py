"""Meter-link messages: one typed dataclass per request and response, and their payload layouts.

Every integer is big-endian and unsigned. A time is ``u32`` Unix seconds UTC (sub-second parts are
dropped on encoding); a date is ``u16`` days since 1970-01-01; a string is ``u8`` byte length then
UTF-8. Enums travel as the byte codes in the tables below, which are part of the protocol: a value
added to an enum in :mod:`citygas.meters.types` needs a code here (a test fails until it has one).
Decoding is strict: unknown codes, unknown alarm bits, booleans other than 0/1 and trailing bytes
are :class:`PayloadError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum
from typing import ClassVar, Final, TypeVar

from citygas.meters.link.errors import PayloadError
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
    ValveState,
)
from citygas.sts.acceptor import AcceptOutcome

__all__ = [
    "ALARM_BITS",
    "EVENT_CODES",
    "MAC_SIZE",
    "MAX_EVENTS_PER_PAGE",
    "MAX_SNAPSHOTS_PER_PAGE",
    "MODE_CODES",
    "OUTCOME_CODES",
    "REQUEST_CLASSES",
    "RESPONSE_CLASSES",
    "RESPONSE_FOR",
    "VALVE_CODES",
    "ButtonResponse",
    "ClockSetResponse",
    "EnterToken",
    "ErrorCode",
    "ErrorResponse",
    "EventsResponse",
    "IdentityResponse",
    "Message",
    "MessageType",
    "ParametersResponse",
    "ParametersSetResponse",
    "PressButton",
    "ReadEvents",
    "ReadIdentity",
    "ReadParameters",
    "ReadRegisters",
    "ReadSnapshots",
    "ReadStatus",
    "RegistersResponse",
    "Request",
    "Response",
    "SetClock",
    "SetParameters",
    "SnapshotKind",
    "SnapshotsResponse",
    "StatusResponse",
    "TokenResponse",
    "clock_body",
    "decode_payload",
    "encode_payload",
    "parameters_body",
]

MAC_SIZE: Final = 16  # HMAC-SHA-256 truncated to 128 bits, for readings and for authorisations
MAX_SNAPSHOTS_PER_PAGE: Final = 32
MAX_EVENTS_PER_PAGE: Final = 32
_EPOCH_DAY: Final = date(1970, 1, 1)


class MessageType(IntEnum):
    """Byte 1 of a frame. A response is its request's type with the top bit set; 0xFF is an error."""

    READ_IDENTITY = 0x01
    READ_STATUS = 0x02
    READ_REGISTERS = 0x03
    READ_SNAPSHOTS = 0x04
    READ_EVENTS = 0x05
    READ_PARAMETERS = 0x06
    ENTER_TOKEN = 0x10
    PRESS_BUTTON = 0x11  # simulated meters only: a real meter's button is pressed by a finger
    SET_PARAMETERS = 0x20  # authorised by the platform
    SET_CLOCK = 0x21  # authorised by the platform
    IDENTITY = 0x81
    STATUS = 0x82
    REGISTERS = 0x83
    SNAPSHOTS = 0x84
    EVENTS = 0x85
    PARAMETERS = 0x86
    TOKEN_RESULT = 0x90
    BUTTON_PRESSED = 0x91
    PARAMETERS_SET = 0xA0
    CLOCK_SET = 0xA1
    ERROR = 0xFF

    @property
    def is_request(self) -> bool:
        return self < 0x80


class ErrorCode(IntEnum):
    """First payload byte of an error frame."""

    BAD_CRC = 0x01
    BAD_LENGTH = 0x02
    UNSUPPORTED_VERSION = 0x03
    UNKNOWN_TYPE = 0x04
    BAD_PAYLOAD = 0x05
    BAD_SIGNATURE = 0x10
    REPLAYED_COUNTER = 0x11
    PARAMETERS_REJECTED = 0x12
    NOT_SUPPORTED = 0x20


class SnapshotKind(IntEnum):
    MONTHLY = 0
    DAILY = 1


MODE_CODES: Final[dict[MeterMode, int]] = {MeterMode.CURRENCY: 0, MeterMode.VOLUME: 1}
VALVE_CODES: Final[dict[ValveState, int]] = {ValveState.OPEN: 0, ValveState.CLOSED: 1, ValveState.ARMED: 2}
# Bit n of the u16 alarm mask.
ALARM_BITS: Final[dict[Alarm, int]] = {
    Alarm.LOW_CREDIT: 0,
    Alarm.CREDIT_EXHAUSTED: 1,
    Alarm.EMERGENCY_CREDIT_IN_USE: 2,
    Alarm.MAGNET_TAMPER: 3,
    Alarm.CASE_OPEN: 4,
    Alarm.LOW_BATTERY: 5,
    Alarm.VALVE_FAULT: 6,
    Alarm.REVERSE_FLOW: 7,
    Alarm.FLOW_ABOVE_QMAX: 8,
    Alarm.KEYPAD_LOCKED: 9,
}
EVENT_CODES: Final[dict[EventCode, int]] = {
    EventCode.TOKEN_ACCEPTED: 0x01,
    EventCode.TOKEN_REJECTED: 0x02,
    EventCode.VALVE_OPENED: 0x10,
    EventCode.VALVE_CLOSED: 0x11,
    EventCode.VALVE_ARMED: 0x12,
    EventCode.EMERGENCY_CREDIT_TAKEN: 0x20,
    EventCode.EMERGENCY_CREDIT_REPAID: 0x21,
    EventCode.LOW_CREDIT: 0x22,
    EventCode.MAGNET_TAMPER: 0x30,
    EventCode.CASE_OPEN: 0x31,
    EventCode.TAMPER_CLEARED: 0x32,
    EventCode.LOW_BATTERY: 0x33,
    EventCode.VALVE_FAULT: 0x34,
    EventCode.REVERSE_FLOW: 0x35,
    EventCode.FLOW_ABOVE_QMAX: 0x36,
    EventCode.KEY_CHANGED: 0x40,
    EventCode.TARIFF_CHANGED: 0x41,
    EventCode.PARAMETERS_CHANGED: 0x42,
    EventCode.CLOCK_SET: 0x43,
}
# Accepted outcomes below 0x10, refusals from 0x10: a receiver can tell success by the code alone.
OUTCOME_CODES: Final[dict[AcceptOutcome, int]] = {
    AcceptOutcome.CREDIT_ADDED: 0x00,
    AcceptOutcome.MANAGEMENT_APPLIED: 0x01,
    AcceptOutcome.KEY_CHANGE_SECTION_STORED: 0x02,
    AcceptOutcome.KEY_CHANGED: 0x03,
    AcceptOutcome.TEST_STARTED: 0x04,
    AcceptOutcome.LOCKED_OUT: 0x10,
    AcceptOutcome.FORMAT_ERROR: 0x11,
    AcceptOutcome.CRC_ERROR: 0x12,
    AcceptOutcome.CLASS_ERROR: 0x13,
    AcceptOutcome.MANUFACTURER_ERROR: 0x14,
    AcceptOutcome.KEY_TYPE_ERROR: 0x15,
    AcceptOutcome.KEY_EXPIRED_ERROR: 0x16,
    AcceptOutcome.OLD_ERROR: 0x17,
    AcceptOutcome.USED_ERROR: 0x18,
    AcceptOutcome.RANGE_ERROR: 0x19,
    AcceptOutcome.OVERFLOW_ERROR: 0x1A,
}

_E = TypeVar("_E")


def _invert(table: dict[_E, int]) -> dict[int, _E]:
    return {code: member for member, code in table.items()}


_MODES: Final = _invert(MODE_CODES)
_VALVES: Final = _invert(VALVE_CODES)
_EVENTS: Final = _invert(EVENT_CODES)
_OUTCOMES: Final = _invert(OUTCOME_CODES)


# --- requests ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadIdentity:
    TYPE: ClassVar[MessageType] = MessageType.READ_IDENTITY


@dataclass(frozen=True, slots=True)
class ReadStatus:
    TYPE: ClassVar[MessageType] = MessageType.READ_STATUS


@dataclass(frozen=True, slots=True)
class ReadRegisters:
    TYPE: ClassVar[MessageType] = MessageType.READ_REGISTERS


@dataclass(frozen=True, slots=True)
class ReadSnapshots:
    """A page of snapshots, oldest first: ``offset`` indexes the meter's list, ``count`` is at most 32."""

    TYPE: ClassVar[MessageType] = MessageType.READ_SNAPSHOTS
    kind: SnapshotKind
    offset: int = 0
    count: int = MAX_SNAPSHOTS_PER_PAGE


@dataclass(frozen=True, slots=True)
class ReadEvents:
    """Events with ``seq > after_seq``, oldest first, at most ``limit`` (at most 32)."""

    TYPE: ClassVar[MessageType] = MessageType.READ_EVENTS
    after_seq: int = 0
    limit: int = MAX_EVENTS_PER_PAGE


@dataclass(frozen=True, slots=True)
class ReadParameters:
    TYPE: ClassVar[MessageType] = MessageType.READ_PARAMETERS


@dataclass(frozen=True, slots=True)
class EnterToken:
    """A 20-digit STS token, as the customer would type it on the keypad."""

    TYPE: ClassVar[MessageType] = MessageType.ENTER_TOKEN
    token: str


@dataclass(frozen=True, slots=True)
class PressButton:
    """The safety re-arm press. Simulated meters only; a real meter answers NOT_SUPPORTED."""

    TYPE: ClassVar[MessageType] = MessageType.PRESS_BUTTON


@dataclass(frozen=True, slots=True, repr=False)
class SetParameters:
    """New parameters, authorised by the platform (see :func:`citygas.meters.link.authorise_parameters`)."""

    TYPE: ClassVar[MessageType] = MessageType.SET_PARAMETERS
    counter: int
    parameters: MeterParameters
    mac: bytes

    def __repr__(self) -> str:
        return f"SetParameters(counter={self.counter}, parameters={self.parameters!r}, mac=<hidden>)"


@dataclass(frozen=True, slots=True, repr=False)
class SetClock:
    """Set the meter clock, authorised by the platform (see :func:`citygas.meters.link.authorise_clock`)."""

    TYPE: ClassVar[MessageType] = MessageType.SET_CLOCK
    counter: int
    at: datetime
    mac: bytes

    def __repr__(self) -> str:
        return f"SetClock(counter={self.counter}, at={self.at!r}, mac=<hidden>)"


# --- responses --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdentityResponse:
    TYPE: ClassVar[MessageType] = MessageType.IDENTITY
    SIGNED: ClassVar[bool] = False
    identity: MeterIdentity


@dataclass(frozen=True, slots=True)
class StatusResponse:
    TYPE: ClassVar[MessageType] = MessageType.STATUS
    SIGNED: ClassVar[bool] = True
    status: MeterStatus


@dataclass(frozen=True, slots=True)
class RegistersResponse:
    TYPE: ClassVar[MessageType] = MessageType.REGISTERS
    SIGNED: ClassVar[bool] = True
    at: datetime  # meter clock when read
    registers: Registers


@dataclass(frozen=True, slots=True)
class SnapshotsResponse:
    TYPE: ClassVar[MessageType] = MessageType.SNAPSHOTS
    SIGNED: ClassVar[bool] = True
    at: datetime
    kind: SnapshotKind
    total: int  # how many snapshots of this kind the meter holds
    offset: int
    snapshots: tuple[Snapshot, ...]


@dataclass(frozen=True, slots=True)
class EventsResponse:
    TYPE: ClassVar[MessageType] = MessageType.EVENTS
    SIGNED: ClassVar[bool] = True
    at: datetime
    more: bool  # events after the last one here exist: ask again with after_seq = last seq
    events: tuple[MeterEvent, ...]


@dataclass(frozen=True, slots=True)
class ParametersResponse:
    TYPE: ClassVar[MessageType] = MessageType.PARAMETERS
    SIGNED: ClassVar[bool] = True
    at: datetime
    counter: int  # the last authorisation counter the meter accepted; the next must be higher
    parameters: MeterParameters


@dataclass(frozen=True, slots=True)
class TokenResponse:
    TYPE: ClassVar[MessageType] = MessageType.TOKEN_RESULT
    SIGNED: ClassVar[bool] = False
    outcome: AcceptOutcome


@dataclass(frozen=True, slots=True)
class ButtonResponse:
    TYPE: ClassVar[MessageType] = MessageType.BUTTON_PRESSED
    SIGNED: ClassVar[bool] = False
    valve: ValveState  # the valve after the press


@dataclass(frozen=True, slots=True)
class ParametersSetResponse:
    TYPE: ClassVar[MessageType] = MessageType.PARAMETERS_SET
    SIGNED: ClassVar[bool] = False
    counter: int


@dataclass(frozen=True, slots=True)
class ClockSetResponse:
    TYPE: ClassVar[MessageType] = MessageType.CLOCK_SET
    SIGNED: ClassVar[bool] = False
    counter: int


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    TYPE: ClassVar[MessageType] = MessageType.ERROR
    SIGNED: ClassVar[bool] = False
    code: ErrorCode
    detail: str = ""


Request = (
    ReadIdentity
    | ReadStatus
    | ReadRegisters
    | ReadSnapshots
    | ReadEvents
    | ReadParameters
    | EnterToken
    | PressButton
    | SetParameters
    | SetClock
)
Response = (
    IdentityResponse
    | StatusResponse
    | RegistersResponse
    | SnapshotsResponse
    | EventsResponse
    | ParametersResponse
    | TokenResponse
    | ButtonResponse
    | ParametersSetResponse
    | ClockSetResponse
    | ErrorResponse
)
Message = Request | Response

REQUEST_CLASSES: Final[dict[MessageType, type[Request]]] = {
    cls.TYPE: cls
    for cls in (
        ReadIdentity,
        ReadStatus,
        ReadRegisters,
        ReadSnapshots,
        ReadEvents,
        ReadParameters,
        EnterToken,
        PressButton,
        SetParameters,
        SetClock,
    )
}
RESPONSE_CLASSES: Final[dict[MessageType, type[Response]]] = {
    cls.TYPE: cls
    for cls in (
        IdentityResponse,
        StatusResponse,
        RegistersResponse,
        SnapshotsResponse,
        EventsResponse,
        ParametersResponse,
        TokenResponse,
        ButtonResponse,
        ParametersSetResponse,
        ClockSetResponse,
        ErrorResponse,
    )
}
# The response type a request expects (besides ERROR).
RESPONSE_FOR: Final[dict[MessageType, MessageType]] = {t: MessageType(t | 0x80) for t in REQUEST_CLASSES}


# --- primitive writer and reader --------------------------------------------------------------------


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def _uint(self, value: int, size: int, what: str) -> None:
        if not 0 <= value < 1 << (8 * size):
            raise PayloadError(f"{what} = {value} does not fit an unsigned {8 * size}-bit field")
        self.out += value.to_bytes(size, "big")

    def u8(self, value: int, what: str) -> None:
        self._uint(value, 1, what)

    def u16(self, value: int, what: str) -> None:
        self._uint(value, 2, what)

    def u32(self, value: int, what: str) -> None:
        self._uint(value, 4, what)

    def u64(self, value: int, what: str) -> None:
        self._uint(value, 8, what)

    def boolean(self, value: bool) -> None:
        self.out.append(1 if value else 0)

    def text(self, value: str, what: str, *, truncate: bool = False) -> None:
        raw = value.encode("utf-8")
        if len(raw) > 255:
            if not truncate:
                raise PayloadError(f"{what} is {len(raw)} bytes of UTF-8; at most 255 fit")
            # Cut at a character boundary so the receiver still decodes valid UTF-8.
            raw = raw[:255].decode("utf-8", errors="ignore").encode("utf-8")
        self.out.append(len(raw))
        self.out += raw

    def time(self, value: datetime, what: str) -> None:
        if value.tzinfo is None or value.utcoffset() is None:
            raise PayloadError(f"{what} must be an aware datetime, got naive {value.isoformat()}")
        self.u32(int(value.timestamp() // 1), what)

    def day(self, value: date, what: str) -> None:
        self.u16((value - _EPOCH_DAY).days, what)

    def raw(self, value: bytes) -> None:
        self.out += value


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise PayloadError(
                f"{self.what} payload ends early: needs {self.pos + size} bytes, has {len(self.data)}"
            )
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "big")

    def boolean(self) -> bool:
        value = self.u8()
        if value > 1:
            raise PayloadError(f"{self.what}: a boolean byte is 0 or 1, got {value}")
        return value == 1

    def text(self) -> str:
        raw = self.take(self.u8())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"{self.what}: a string is not valid UTF-8") from exc

    def time(self) -> datetime:
        return datetime.fromtimestamp(self.u32(), UTC)

    def day(self) -> date:
        return _EPOCH_DAY + timedelta(days=self.u16())

    def code(self, table: dict[int, _E], what: str) -> _E:
        value = self.u8()
        try:
            return table[value]
        except KeyError:
            raise PayloadError(f"{self.what}: unknown {what} code 0x{value:02X}") from None

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise PayloadError(
                f"{self.what} payload has {len(self.data) - self.pos} unexpected trailing bytes"
            )


_STATUS_FLAGS_EMERGENCY_AVAILABLE: Final = 0x01


def _write_parameters(w: _Writer, p: MeterParameters) -> None:
    w.u32(p.low_credit_threshold, "low_credit_threshold")
    w.u32(p.emergency_credit, "emergency_credit")
    if p.friendly_hours is None:
        w.raw(b"\x00\x00\x00")
    else:
        start, end = p.friendly_hours
        if not (0 <= start <= 23 and 0 <= end <= 23):
            raise PayloadError(f"friendly_hours {p.friendly_hours} must be hours 0..23")
        w.raw(bytes((1, start, end)))
    w.u8(len(p.friendly_holidays), "number of friendly_holidays")
    for holiday in p.friendly_holidays:
        w.day(holiday, "friendly holiday")


def _read_parameters(r: _Reader) -> MeterParameters:
    threshold = r.u32()
    emergency = r.u32()
    present = r.boolean()
    start, end = r.u8(), r.u8()
    if present and not (start <= 23 and end <= 23):
        raise PayloadError(f"{r.what}: friendly hours {start}..{end} are not hours 0..23")
    if not present and (start or end):
        raise PayloadError(f"{r.what}: friendly hours absent but hour bytes are not zero")
    holidays = tuple(r.day() for _ in range(r.u8()))
    return MeterParameters(
        low_credit_threshold=threshold,
        emergency_credit=emergency,
        friendly_hours=(start, end) if present else None,
        friendly_holidays=holidays,
    )


def parameters_body(counter: int, parameters: MeterParameters) -> bytes:
    """The SET_PARAMETERS payload without its MAC: what the authorisation MAC covers."""
    w = _Writer()
    w.u32(counter, "counter")
    _write_parameters(w, parameters)
    return bytes(w.out)


def clock_body(counter: int, at: datetime) -> bytes:
    """The SET_CLOCK payload without its MAC."""
    w = _Writer()
    w.u32(counter, "counter")
    w.time(at, "clock")
    return bytes(w.out)


# --- payload encoding -------------------------------------------------------------------------------


def encode_payload(message: Message) -> bytes:  # noqa: PLR0912, PLR0915 - one branch per message type
    """The payload bytes of a message (for a signed response: without its MAC)."""
    w = _Writer()
    match message:
        case ReadIdentity() | ReadStatus() | ReadRegisters() | ReadParameters() | PressButton():
            pass
        case ReadSnapshots(kind=kind, offset=offset, count=count):
            w.u8(kind, "kind")
            w.u16(offset, "offset")
            w.u8(count, "count")
        case ReadEvents(after_seq=after_seq, limit=limit):
            w.u32(after_seq, "after_seq")
            w.u8(limit, "limit")
        case EnterToken(token=token):
            if len(token) != 20 or not token.isascii() or not token.isdigit():
                raise PayloadError(f"a token is exactly 20 digits, got {token!r}")
            w.raw(token.encode("ascii"))
        case SetParameters(counter=counter, parameters=parameters, mac=mac):
            _check_mac(mac)
            w.raw(parameters_body(counter, parameters) + mac)
        case SetClock(counter=counter, at=at, mac=mac):
            _check_mac(mac)
            w.raw(clock_body(counter, at) + mac)
        case IdentityResponse(identity=i):
            w.text(i.serial, "serial")
            w.text(i.sts_meter_number, "sts_meter_number")
            w.text(i.model, "model")
            w.u16(i.manufacturer_code, "manufacturer_code")
            w.text(i.firmware, "firmware")
            w.u8(MODE_CODES[i.mode], "mode")
            w.text(i.sgc, "sgc")
            w.u8(i.krn, "krn")
            w.u8(i.ti, "ti")
            w.u16(i.base_date, "base_date")
        case StatusResponse(status=s):
            w.time(s.at, "at")
            w.u8(MODE_CODES[s.mode], "mode")
            w.u32(s.credit, "credit")
            w.u8(_STATUS_FLAGS_EMERGENCY_AVAILABLE if s.emergency_credit_available else 0, "flags")
            w.u32(s.emergency_credit_in_use, "emergency_credit_in_use")
            w.u32(s.friendly_debt, "friendly_debt")
            w.u8(VALVE_CODES[s.valve], "valve")
            w.u16(sum(1 << ALARM_BITS[a] for a in s.alarms), "alarms")
            w.u32(s.tariff_paise_per_scm, "tariff_paise_per_scm")
        case RegistersResponse(at=at, registers=reg):
            w.time(at, "at")
            w.u64(reg.cumulative_litres, "cumulative_litres")
            w.u64(reg.cumulative_credit_loaded, "cumulative_credit_loaded")
            w.u32(reg.tokens_accepted, "tokens_accepted")
        case SnapshotsResponse(at=at, kind=kind, total=total, offset=offset, snapshots=snapshots):
            w.time(at, "at")
            w.u8(kind, "kind")
            w.u16(total, "total")
            w.u16(offset, "offset")
            w.u8(len(snapshots), "number of snapshots")
            for snap in snapshots:
                w.day(snap.period_end, "period_end")
                w.u64(snap.cumulative_litres, "cumulative_litres")
                w.u32(snap.credit, "credit")
        case EventsResponse(at=at, more=more, events=events):
            w.time(at, "at")
            w.boolean(more)
            w.u8(len(events), "number of events")
            for event in events:
                w.u32(event.seq, "event seq")
                w.time(event.at, "event at")
                w.u8(EVENT_CODES[event.code], "event code")
                w.text(event.detail, "event detail", truncate=True)
        case ParametersResponse(at=at, counter=counter, parameters=parameters):
            w.time(at, "at")
            w.u32(counter, "counter")
            _write_parameters(w, parameters)
        case TokenResponse(outcome=outcome):
            w.u8(OUTCOME_CODES[outcome], "outcome")
        case ButtonResponse(valve=valve):
            w.u8(VALVE_CODES[valve], "valve")
        case ParametersSetResponse(counter=counter) | ClockSetResponse(counter=counter):
            w.u32(counter, "counter")
        case ErrorResponse(code=code, detail=detail):
            w.u8(code, "error code")
            w.text(detail, "error detail", truncate=True)
    return bytes(w.out)


def _check_mac(mac: bytes) -> None:
    if len(mac) != MAC_SIZE:
        raise PayloadError(f"an authorisation MAC is {MAC_SIZE} bytes, got {len(mac)}")


def decode_payload(message_type: MessageType, payload: bytes) -> Message:  # noqa: PLR0912, PLR0915 - one branch per message type
    """Decode a payload (for a signed response: without its MAC) as the message ``message_type`` names."""
    r = _Reader(payload, message_type.name)
    message: Message
    match message_type:
        case MessageType.READ_IDENTITY:
            message = ReadIdentity()
        case MessageType.READ_STATUS:
            message = ReadStatus()
        case MessageType.READ_REGISTERS:
            message = ReadRegisters()
        case MessageType.READ_PARAMETERS:
            message = ReadParameters()
        case MessageType.PRESS_BUTTON:
            message = PressButton()
        case MessageType.READ_SNAPSHOTS:
            kind = r.code({k.value: k for k in SnapshotKind}, "snapshot kind")
            message = ReadSnapshots(kind, r.u16(), r.u8())
        case MessageType.READ_EVENTS:
            message = ReadEvents(r.u32(), r.u8())
        case MessageType.ENTER_TOKEN:
            raw = r.take(20)
            if not all(0x30 <= b <= 0x39 for b in raw):
                raise PayloadError("a token is 20 ASCII digits")
            message = EnterToken(raw.decode("ascii"))
        case MessageType.SET_PARAMETERS:
            counter = r.u32()
            message = SetParameters(counter, _read_parameters(r), r.take(MAC_SIZE))
        case MessageType.SET_CLOCK:
            message = SetClock(r.u32(), r.time(), r.take(MAC_SIZE))
        case MessageType.IDENTITY:
            message = IdentityResponse(
                MeterIdentity(
                    serial=r.text(),
                    sts_meter_number=r.text(),
                    model=r.text(),
                    manufacturer_code=r.u16(),
                    firmware=r.text(),
                    mode=r.code(_MODES, "mode"),
                    sgc=r.text(),
                    krn=r.u8(),
                    ti=r.u8(),
                    base_date=r.u16(),
                )
            )
        case MessageType.STATUS:
            message = StatusResponse(_read_status(r))
        case MessageType.REGISTERS:
            message = RegistersResponse(r.time(), Registers(r.u64(), r.u64(), r.u32()))
        case MessageType.SNAPSHOTS:
            at = r.time()
            kind = r.code({k.value: k for k in SnapshotKind}, "snapshot kind")
            total, offset = r.u16(), r.u16()
            snapshots = tuple(Snapshot(r.day(), r.u64(), r.u32()) for _ in range(r.u8()))
            message = SnapshotsResponse(at, kind, total, offset, snapshots)
        case MessageType.EVENTS:
            at, more = r.time(), r.boolean()
            events = tuple(
                MeterEvent(seq=r.u32(), at=r.time(), code=r.code(_EVENTS, "event"), detail=r.text())
                for _ in range(r.u8())
            )
            message = EventsResponse(at, more, events)
        case MessageType.PARAMETERS:
            at, counter = r.time(), r.u32()
            message = ParametersResponse(at, counter, _read_parameters(r))
        case MessageType.TOKEN_RESULT:
            message = TokenResponse(r.code(_OUTCOMES, "token outcome"))
        case MessageType.BUTTON_PRESSED:
            message = ButtonResponse(r.code(_VALVES, "valve"))
        case MessageType.PARAMETERS_SET:
            message = ParametersSetResponse(r.u32())
        case MessageType.CLOCK_SET:
            message = ClockSetResponse(r.u32())
        case MessageType.ERROR:
            message = ErrorResponse(r.code({c.value: c for c in ErrorCode}, "error"), r.text())
    r.finish()
    return message


def _read_status(r: _Reader) -> MeterStatus:
    at = r.time()
    mode = r.code(_MODES, "mode")
    credit = r.u32()
    flags = r.u8()
    if flags & ~_STATUS_FLAGS_EMERGENCY_AVAILABLE:
        raise PayloadError(f"{r.what}: unknown status flag bits 0x{flags:02X}")
    in_use = r.u32()
    friendly_debt = r.u32()
    valve = r.code(_VALVES, "valve")
    mask = r.u16()
    alarms = frozenset(alarm for alarm, bit in ALARM_BITS.items() if mask & (1 << bit))
    known = sum(1 << bit for bit in ALARM_BITS.values())
    if mask & ~known:
        raise PayloadError(f"{r.what}: unknown alarm bits 0x{mask & ~known:04X}")
    return MeterStatus(
        at=at,
        mode=mode,
        credit=credit,
        emergency_credit_available=bool(flags & _STATUS_FLAGS_EMERGENCY_AVAILABLE),
        emergency_credit_in_use=in_use,
        valve=valve,
        alarms=alarms,
        tariff_paise_per_scm=r.u32(),
        friendly_debt=friendly_debt,
    )
