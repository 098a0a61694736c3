"""The phone's (or platform's) side of the link: numbered requests over any transport.

A client cannot verify readings (it holds no meter keys). Every reading comes back as a
:class:`SignedReading`: the decoded message for display and the exact frame bytes to upload, which
the platform checks with :func:`citygas.meters.link.verify_reading`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from citygas.meters.link.codec import decode_response, encode_request
from citygas.meters.link.endpoint import MeterLinkEndpoint
from citygas.meters.link.errors import MeterRefusedError, SequenceMismatchError, UnexpectedResponseError
from citygas.meters.link.messages import (
    MAX_EVENTS_PER_PAGE,
    MAX_SNAPSHOTS_PER_PAGE,
    RESPONSE_FOR,
    ButtonResponse,
    ClockSetResponse,
    EnterToken,
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
)
from citygas.meters.types import MeterIdentity, ValveState
from citygas.sts.acceptor import AcceptOutcome

__all__ = ["InProcessTransport", "MeterLinkClient", "SignedReading", "Transport"]

R = TypeVar("R", bound=Response)


class Transport(Protocol):
    """Carries one request frame to the meter and brings back its one response frame."""

    async def exchange(self, frame: bytes) -> bytes: ...


class InProcessTransport:
    """Calls an endpoint directly: for tests and for the simulator's own use."""

    def __init__(self, endpoint: MeterLinkEndpoint) -> None:
        self.endpoint = endpoint

    async def exchange(self, frame: bytes) -> bytes:
        return self.endpoint.handle(frame)


@dataclass(frozen=True, slots=True)
class SignedReading(Generic[R]):
    """A reading as the meter signed it: ``message`` to show, ``frame`` to upload for verification."""

    message: R
    frame: bytes = field(repr=False)


class MeterLinkClient:
    """Typed requests to one meter. Not safe for concurrent use: the link is one request at a time,
    so callers await each call before the next (a lock enforces it)."""

    def __init__(self, transport: Transport, *, first_seq: int = 1) -> None:
        self._transport = transport
        self._seq = first_seq & 0xFFFF
        self._lock = asyncio.Lock()

    async def request(self, message: Request) -> tuple[Response, bytes]:
        """Send any request; return the decoded response and its frame. Raises
        :class:`MeterRefusedError` for an ERROR answer, :class:`SequenceMismatchError` when the
        answer does not echo the request's sequence number, :class:`UnexpectedResponseError` when
        it is not the response type the request calls for."""
        async with self._lock:
            seq = self._seq
            self._seq = (self._seq + 1) & 0xFFFF
            frame = await self._transport.exchange(encode_request(message, seq))
        decoded = decode_response(frame)
        if decoded.seq != seq:
            raise SequenceMismatchError(f"sent request #{seq}, got the answer to #{decoded.seq}")
        response = decoded.message
        if isinstance(response, ErrorResponse):
            raise MeterRefusedError(response.code, response.detail)
        if RESPONSE_FOR[message.TYPE] != response.TYPE:
            raise UnexpectedResponseError(f"{message.TYPE.name} was answered with {response.TYPE.name}")
        return response, frame

    async def _expect(self, message: Request, kind: type[R]) -> SignedReading[R]:
        response, frame = await self.request(message)
        assert isinstance(response, kind)  # request() checked the type against RESPONSE_FOR
        return SignedReading(response, frame)

    async def read_identity(self) -> MeterIdentity:
        return (await self._expect(ReadIdentity(), IdentityResponse)).message.identity

    async def read_status(self) -> SignedReading[StatusResponse]:
        return await self._expect(ReadStatus(), StatusResponse)

    async def read_registers(self) -> SignedReading[RegistersResponse]:
        return await self._expect(ReadRegisters(), RegistersResponse)

    async def read_parameters(self) -> SignedReading[ParametersResponse]:
        return await self._expect(ReadParameters(), ParametersResponse)

    async def read_snapshots(
        self, kind: SnapshotKind, offset: int = 0, count: int = MAX_SNAPSHOTS_PER_PAGE
    ) -> SignedReading[SnapshotsResponse]:
        return await self._expect(ReadSnapshots(kind, offset, count), SnapshotsResponse)

    async def read_all_snapshots(self, kind: SnapshotKind) -> list[SignedReading[SnapshotsResponse]]:
        """Every page of one kind of snapshot, oldest first."""
        pages = [await self.read_snapshots(kind)]
        while (last := pages[-1].message).snapshots and last.offset + len(last.snapshots) < last.total:
            pages.append(await self.read_snapshots(kind, last.offset + len(last.snapshots)))
        return pages

    async def read_events(
        self, after_seq: int = 0, limit: int = MAX_EVENTS_PER_PAGE
    ) -> SignedReading[EventsResponse]:
        return await self._expect(ReadEvents(after_seq, limit), EventsResponse)

    async def read_events_since(self, after_seq: int = 0) -> list[SignedReading[EventsResponse]]:
        """Every event after ``after_seq``, page by page."""
        pages = [await self.read_events(after_seq)]
        while (last := pages[-1].message).more and last.events:
            pages.append(await self.read_events(last.events[-1].seq))
        return pages

    async def enter_token(self, token: str) -> AcceptOutcome:
        return (await self._expect(EnterToken(token), TokenResponse)).message.outcome

    async def press_button(self) -> ValveState:
        """The re-arm press (simulated meters only); returns the valve state after it."""
        return (await self._expect(PressButton(), ButtonResponse)).message.valve

    async def set_parameters(self, authorised: SetParameters) -> int:
        """Deliver parameters the platform authorised; returns the counter the meter accepted."""
        return (await self._expect(authorised, ParametersSetResponse)).message.counter

    async def set_clock(self, authorised: SetClock) -> int:
        """Deliver a clock setting the platform authorised; returns the counter the meter accepted."""
        return (await self._expect(authorised, ClockSetResponse)).message.counter
