"""The meter's side of the link: one request frame in, one response frame out.

:class:`MeterLinkEndpoint` is what meter firmware would run, written against :class:`LinkTarget`,
the small surface of the meter model it needs (``citygas.meters.model.SimulatedMeter`` implements
it). It never raises for what arrives over the air: damaged, unknown, malformed or unauthorised
frames are answered with an ERROR frame, because a meter must answer and must not crash.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from citygas.meters.link.codec import decode_request, encode_response
from citygas.meters.link.errors import (
    AuthorisationError,
    FrameCrcError,
    FrameError,
    FrameLengthError,
    PayloadError,
    ReplayedCounterError,
    UnknownMessageTypeError,
    UnsupportedVersionError,
)
from citygas.meters.link.frames import MAX_PAYLOAD, peek_header
from citygas.meters.link.messages import (
    MAC_SIZE,
    MAX_EVENTS_PER_PAGE,
    MAX_SNAPSHOTS_PER_PAGE,
    ButtonResponse,
    ClockSetResponse,
    EnterToken,
    ErrorCode,
    ErrorResponse,
    EventsResponse,
    IdentityResponse,
    ParametersResponse,
    ParametersSetResponse,
    PressButton,
    ReadEvents,
    ReadIdentity,
    ReadParameters,
    ReadRegisters,
    ReadSnapshots,
    ReadStatus,
    RegistersResponse,
    Request,
    Response,
    SetClock,
    SetParameters,
    SnapshotKind,
    SnapshotsResponse,
    StatusResponse,
    TokenResponse,
    encode_payload,
)
from citygas.meters.link.signing import check_authorisation
from citygas.meters.types import (
    MeterEvent,
    MeterIdentity,
    MeterParameters,
    MeterStatus,
    Registers,
    Snapshot,
)
from citygas.sts.acceptor import AcceptOutcome

__all__ = ["LinkTarget", "MeterLinkEndpoint", "TokenOutcome"]


class _OutcomeValue(Protocol):
    @property
    def value(self) -> str: ...


class TokenOutcome(Protocol):
    """What entering a token returns: anything with an ``outcome`` whose ``value`` is an
    :class:`citygas.sts.AcceptOutcome` value (``citygas.sts.AcceptResult`` is one)."""

    @property
    def outcome(self) -> _OutcomeValue: ...


class LinkTarget(Protocol):
    """The meter as the link sees it. Arguments are positional-only so the model may name them as
    it likes; ``press_button`` may return anything (the endpoint reads the valve from ``status``)."""

    def identity(self) -> MeterIdentity: ...
    def status(self) -> MeterStatus: ...
    def registers(self) -> Registers: ...
    def monthly_snapshots(self) -> list[Snapshot]: ...  # oldest first
    def daily_snapshots(self) -> list[Snapshot]: ...  # oldest first
    def events(self, after_seq: int, limit: int, /) -> list[MeterEvent]: ...  # seq > after_seq, oldest first
    def enter_token(self, token: str, /) -> TokenOutcome: ...
    def press_button(self) -> object: ...
    def parameters(self) -> MeterParameters: ...
    def set_parameters(self, p: MeterParameters, /) -> None: ...  # ValueError when the meter refuses them
    def set_clock(self, at: datetime, /) -> None: ...


class MeterLinkEndpoint:
    """Answers meter-link frames for one meter.

    ``last_parameter_counter`` is the highest authorisation counter the meter has accepted; a real
    meter keeps it in non-volatile memory, so a simulator that persists meters saves
    :attr:`last_parameter_counter` and passes it back here. ``simulated=False`` makes PRESS_BUTTON
    answer NOT_SUPPORTED, as a real meter does.
    """

    def __init__(
        self,
        target: LinkTarget,
        reading_key: bytes,
        parameter_key: bytes,
        *,
        last_parameter_counter: int = 0,
        simulated: bool = True,
        on_authorised: Callable[[int], None] | None = None,
    ) -> None:
        self._target = target
        self._reading_key = reading_key
        self._parameter_key = parameter_key
        self._last_counter = last_parameter_counter
        self._simulated = simulated
        self._on_authorised = on_authorised

    def __repr__(self) -> str:  # keys stay out of logs
        return f"MeterLinkEndpoint(target={self._target!r}, last_parameter_counter={self._last_counter})"

    @property
    def last_parameter_counter(self) -> int:
        return self._last_counter

    def handle(self, frame: bytes) -> bytes:
        """Answer one request frame with one response frame (an ERROR frame when it cannot be served)."""
        header = peek_header(frame)
        seq = header[2] if header is not None else 0
        try:
            request = decode_request(frame)
        except FrameError as exc:
            return self._error(seq, _error_code(exc), str(exc))
        response = self._answer(request.message)
        return encode_response(response, request.seq, reading_key=self._reading_key)

    def _error(self, seq: int, code: ErrorCode, detail: str) -> bytes:
        return encode_response(ErrorResponse(code, detail), seq)

    def _answer(self, request: Request) -> Response:  # noqa: PLR0911 - one answer per request type
        target = self._target
        match request:
            case ReadIdentity():
                return IdentityResponse(target.identity())
            case ReadStatus():
                return StatusResponse(target.status())
            case ReadRegisters():
                return RegistersResponse(target.status().at, target.registers())
            case ReadSnapshots(kind=kind, offset=offset, count=count):
                snapshots = (
                    target.monthly_snapshots() if kind is SnapshotKind.MONTHLY else target.daily_snapshots()
                )
                page = snapshots[offset : offset + min(count, MAX_SNAPSHOTS_PER_PAGE)]
                return SnapshotsResponse(target.status().at, kind, len(snapshots), offset, tuple(page))
            case ReadEvents(after_seq=after_seq, limit=limit):
                return self._events(after_seq, min(limit, MAX_EVENTS_PER_PAGE))
            case ReadParameters():
                return ParametersResponse(target.status().at, self._last_counter, target.parameters())
            case EnterToken(token=token):
                return _token_response(target.enter_token(token))
            case PressButton():
                if not self._simulated:
                    return ErrorResponse(ErrorCode.NOT_SUPPORTED, "the button is pressed on the meter itself")
                target.press_button()
                return ButtonResponse(target.status().valve)
            case SetParameters() | SetClock():
                return self._authorised(request)

    def _events(self, after_seq: int, limit: int) -> EventsResponse:
        # One more than asked tells whether there are more; then trim to what fits one frame.
        found = self._target.events(after_seq, limit + 1)
        more = len(found) > limit
        page = found[:limit]
        at = self._target.status().at
        while page:
            size = len(encode_payload(EventsResponse(at, more, tuple(page))))
            if size + MAC_SIZE <= MAX_PAYLOAD:
                break
            page.pop()
            more = True
        return EventsResponse(at, more, tuple(page))

    def _authorised(self, request: SetParameters | SetClock) -> Response:
        serial = self._target.identity().serial
        try:
            check_authorisation(
                request, serial=serial, parameter_key=self._parameter_key, last_counter=self._last_counter
            )
        except ReplayedCounterError as exc:
            return ErrorResponse(ErrorCode.REPLAYED_COUNTER, str(exc))
        except AuthorisationError as exc:
            return ErrorResponse(ErrorCode.BAD_SIGNATURE, str(exc))
        if isinstance(request, SetParameters):
            try:
                self._target.set_parameters(request.parameters)
            except ValueError as exc:
                return ErrorResponse(ErrorCode.PARAMETERS_REJECTED, str(exc))
            response: Response = ParametersSetResponse(request.counter)
        else:
            self._target.set_clock(request.at)
            response = ClockSetResponse(request.counter)
        # The counter moves only once the change is made, so a refused change can be retried.
        self._last_counter = request.counter
        if self._on_authorised is not None:
            self._on_authorised(request.counter)
        return response


def _token_response(result: TokenOutcome) -> Response:
    # An outcome outside AcceptOutcome is a bug in the meter model: let the ValueError surface.
    return TokenResponse(AcceptOutcome(result.outcome.value))


def _error_code(exc: FrameError) -> ErrorCode:
    if isinstance(exc, FrameCrcError):
        return ErrorCode.BAD_CRC
    if isinstance(exc, FrameLengthError):
        return ErrorCode.BAD_LENGTH
    if isinstance(exc, UnsupportedVersionError):
        return ErrorCode.UNSUPPORTED_VERSION
    if isinstance(exc, UnknownMessageTypeError):
        return ErrorCode.UNKNOWN_TYPE
    assert isinstance(exc, PayloadError)
    return ErrorCode.BAD_PAYLOAD
