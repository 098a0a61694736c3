"""The meter's endpoint against a fake meter, driven by the client over in-process and WebSocket
transports: every request answered, sequence numbers echoed, bad frames answered with errors,
authorised settings applied once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from websockets.asyncio.server import ServerConnection, serve

from citygas.meters.link import (
    ErrorCode,
    ErrorResponse,
    EventsResponse,
    InProcessTransport,
    MeterLinkClient,
    MeterLinkEndpoint,
    MeterRefusedError,
    ReadEvents,
    ReadStatus,
    SequenceMismatchError,
    SnapshotKind,
    UnexpectedResponseError,
    authorise_clock,
    authorise_parameters,
    decode_response,
    derive_meter_parameter_key,
    derive_meter_reading_key,
    encode_frame,
    encode_request,
    verify_reading,
)
from citygas.meters.link.websocket import WebSocketTransport
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
from citygas.sts import AcceptOutcome

ROOT = bytes(range(32))
SERIAL = "G16-FAKE-01"
READING_KEY = derive_meter_reading_key(ROOT, SERIAL)
PARAMETER_KEY = derive_meter_parameter_key(ROOT, SERIAL)
START = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
TOKEN_OK = "11111111111111111111"

# The anyio pytest plugin (anyio comes with the web stack) runs the async tests on asyncio.
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass(frozen=True)
class _Result:
    outcome: AcceptOutcome


@dataclass
class FakeMeter:
    """Just enough meter to answer the link: a clock, credit, a valve and a log."""

    clock: datetime = START
    credit: int = 0
    valve: ValveState = ValveState.CLOSED
    settings: MeterParameters = field(default_factory=lambda: MeterParameters(2_000, 0))
    log: list[MeterEvent] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def identity(self) -> MeterIdentity:
        return MeterIdentity(
            SERIAL, "600727000012345673", "G1.6", 47, "0.1", MeterMode.CURRENCY, "123457", 1, 1, 2014
        )

    def status(self) -> MeterStatus:
        alarms = frozenset({Alarm.CREDIT_EXHAUSTED}) if self.credit == 0 else frozenset()
        return MeterStatus(self.clock, MeterMode.CURRENCY, self.credit, True, 0, self.valve, alarms, 5_000)

    def registers(self) -> Registers:
        return Registers(
            cumulative_litres=10_000, cumulative_credit_loaded=self.credit, tokens_accepted=len(self.tokens)
        )

    def monthly_snapshots(self) -> list[Snapshot]:
        return [
            Snapshot(date(2024 + (m + 4) // 12, (m + 4) % 12 + 1, 1) - timedelta(days=1), m * 1000, 0)
            for m in range(24)
        ]

    def daily_snapshots(self) -> list[Snapshot]:
        return [Snapshot(date(2026, 1, 1) + timedelta(days=d), d * 900, 50_000 - d) for d in range(90)]

    def events(self, after_seq: int, limit: int) -> list[MeterEvent]:
        return [e for e in self.log if e.seq > after_seq][:limit]

    def enter_token(self, token: str) -> _Result:
        if token in self.tokens:
            return _Result(AcceptOutcome.USED_ERROR)
        self.tokens.append(token)
        self.credit += 50_000
        self.valve = ValveState.ARMED
        return _Result(AcceptOutcome.CREDIT_ADDED)

    def press_button(self) -> None:
        if self.valve is ValveState.ARMED:
            self.valve = ValveState.OPEN

    def parameters(self) -> MeterParameters:
        return self.settings

    def set_parameters(self, p: MeterParameters) -> None:
        if p.emergency_credit > 100_000:
            raise ValueError("emergency credit above Rs 1000 is not allowed on this meter")
        self.settings = p

    def set_clock(self, at: datetime) -> None:
        self.clock = at


def _meter_with_events(n: int, detail: str = "") -> FakeMeter:
    meter = FakeMeter()
    meter.log = [
        MeterEvent(i, START + timedelta(minutes=i), EventCode.VALVE_OPENED, detail) for i in range(1, n + 1)
    ]
    return meter


def _client(meter: FakeMeter, **kwargs: object) -> tuple[MeterLinkClient, MeterLinkEndpoint]:
    endpoint = MeterLinkEndpoint(meter, READING_KEY, PARAMETER_KEY, **kwargs)  # type: ignore[arg-type]
    return MeterLinkClient(InProcessTransport(endpoint)), endpoint


async def test_the_identity_is_read() -> None:
    client, _ = _client(FakeMeter())
    identity = await client.read_identity()
    assert (identity.serial, identity.sts_meter_number, identity.base_date) == (
        SERIAL,
        "600727000012345673",
        2014,
    )


async def test_a_status_reading_is_signed_by_the_meter_and_verifies_on_the_platform() -> None:
    client, _ = _client(FakeMeter(credit=12_345))
    reading = await client.read_status()
    assert reading.message.status.credit == 12_345
    assert verify_reading(reading.frame, derive_meter_reading_key(ROOT, SERIAL)) == reading.message


async def test_registers_are_signed_and_carry_the_meter_clock() -> None:
    client, _ = _client(FakeMeter())
    reading = await client.read_registers()
    assert (reading.message.at, reading.message.registers.cumulative_litres) == (START, 10_000)
    verify_reading(reading.frame, READING_KEY)


async def test_entering_a_token_answers_the_sts_outcome_and_the_button_rearms_the_valve() -> None:
    meter = FakeMeter()
    client, _ = _client(meter)
    assert await client.enter_token(TOKEN_OK) is AcceptOutcome.CREDIT_ADDED
    assert (await client.read_status()).message.status.valve is ValveState.ARMED
    assert await client.press_button() is ValveState.OPEN
    assert await client.enter_token(TOKEN_OK) is AcceptOutcome.USED_ERROR
    assert meter.credit == 50_000


async def test_a_real_meter_refuses_the_simulated_button_press() -> None:
    meter = FakeMeter(valve=ValveState.ARMED)
    client, _ = _client(meter, simulated=False)
    with pytest.raises(MeterRefusedError) as refused:
        await client.press_button()
    assert refused.value.code is ErrorCode.NOT_SUPPORTED
    assert meter.valve is ValveState.ARMED


async def test_monthly_snapshots_come_in_pages_that_add_up_to_all_24() -> None:
    client, _ = _client(FakeMeter())
    first = await client.read_snapshots(SnapshotKind.MONTHLY, offset=20, count=10)
    assert (first.message.total, first.message.offset, len(first.message.snapshots)) == (24, 20, 4)
    pages = await client.read_all_snapshots(SnapshotKind.MONTHLY)
    assert [len(p.message.snapshots) for p in pages] == [24]
    assert list(pages[0].message.snapshots) == FakeMeter().monthly_snapshots()


async def test_daily_snapshots_page_at_32_and_each_page_verifies() -> None:
    client, _ = _client(FakeMeter())
    pages = await client.read_all_snapshots(SnapshotKind.DAILY)
    assert [len(p.message.snapshots) for p in pages] == [32, 32, 26]
    snapshots = [s for p in pages for s in p.message.snapshots]
    assert snapshots == FakeMeter().daily_snapshots()
    for page in pages:
        verify_reading(page.frame, READING_KEY)


async def test_a_page_past_the_end_is_empty() -> None:
    client, _ = _client(FakeMeter())
    page = await client.read_snapshots(SnapshotKind.MONTHLY, offset=500)
    assert (page.message.total, page.message.snapshots) == (24, ())


async def test_events_after_a_sequence_number_come_in_pages_with_a_more_flag() -> None:
    client, _ = _client(_meter_with_events(70))
    page = await client.read_events(after_seq=60, limit=5)
    assert ([e.seq for e in page.message.events], page.message.more) == ([61, 62, 63, 64, 65], True)
    last = await client.read_events(after_seq=65, limit=5)
    assert ([e.seq for e in last.message.events], last.message.more) == ([66, 67, 68, 69, 70], False)
    pages = await client.read_events_since(0)
    assert [len(p.message.events) for p in pages] == [32, 32, 6]


async def test_an_events_page_is_trimmed_to_fit_one_frame() -> None:
    client, _ = _client(_meter_with_events(40, detail="x" * 255))
    page = await client.read_events(0, 32)
    assert (len(page.message.events), page.message.more) == (15, True)
    assert len(page.frame) <= 6 + 4096 + 2


async def test_authorised_parameters_are_applied_once_and_the_counter_advances() -> None:
    meter = FakeMeter()
    client, endpoint = _client(meter, last_parameter_counter=7)
    new = MeterParameters(low_credit_threshold=5_000, emergency_credit=10_000, friendly_hours=(21, 7))
    assert (await client.read_parameters()).message.counter == 7
    request = authorise_parameters(new, serial=SERIAL, counter=8, parameter_key=PARAMETER_KEY)
    assert await client.set_parameters(request) == 8
    assert (meter.settings, endpoint.last_parameter_counter) == (new, 8)
    reading = await client.read_parameters()
    assert (reading.message.counter, reading.message.parameters) == (8, new)
    verify_reading(reading.frame, READING_KEY)


async def test_a_replayed_authorisation_is_refused_and_changes_nothing() -> None:
    meter = FakeMeter()
    client, endpoint = _client(meter)
    first = authorise_parameters(MeterParameters(1, 0), serial=SERIAL, counter=1, parameter_key=PARAMETER_KEY)
    second = authorise_parameters(
        MeterParameters(2, 0), serial=SERIAL, counter=2, parameter_key=PARAMETER_KEY
    )
    await client.set_parameters(first)
    await client.set_parameters(second)
    with pytest.raises(MeterRefusedError, match="REPLAYED_COUNTER") as refused:
        await client.set_parameters(first)
    assert refused.value.code is ErrorCode.REPLAYED_COUNTER
    assert (meter.settings, endpoint.last_parameter_counter) == (MeterParameters(2, 0), 2)


async def test_parameters_authorised_with_the_wrong_key_are_refused() -> None:
    meter = FakeMeter()
    client, endpoint = _client(meter)
    forged = authorise_parameters(
        MeterParameters(1, 99_000), serial=SERIAL, counter=1, parameter_key=READING_KEY
    )
    with pytest.raises(MeterRefusedError) as refused:
        await client.set_parameters(forged)
    assert refused.value.code is ErrorCode.BAD_SIGNATURE
    assert (meter.settings, endpoint.last_parameter_counter) == (MeterParameters(2_000, 0), 0)


async def test_parameters_for_another_meter_are_refused() -> None:
    client, _ = _client(FakeMeter())
    other = "G16-FAKE-02"
    request = authorise_parameters(
        MeterParameters(1, 0), serial=other, counter=1, parameter_key=derive_meter_parameter_key(ROOT, other)
    )
    with pytest.raises(MeterRefusedError) as refused:
        await client.set_parameters(request)
    assert refused.value.code is ErrorCode.BAD_SIGNATURE


async def test_parameters_the_meter_refuses_do_not_use_up_the_counter() -> None:
    meter = FakeMeter()
    client, endpoint = _client(meter)
    request = authorise_parameters(
        MeterParameters(1, 500_000), serial=SERIAL, counter=1, parameter_key=PARAMETER_KEY
    )
    with pytest.raises(MeterRefusedError, match="above Rs 1000") as refused:
        await client.set_parameters(request)
    assert (refused.value.code, endpoint.last_parameter_counter) == (ErrorCode.PARAMETERS_REJECTED, 0)


async def test_an_authorised_time_sync_sets_the_clock_and_reports_the_persisted_counter() -> None:
    meter = FakeMeter()
    saved: list[int] = []
    client, _ = _client(meter, last_parameter_counter=41, on_authorised=saved.append)
    at = datetime(2026, 5, 2, 8, 0, 0, 500_000, tzinfo=UTC)
    assert (
        await client.set_clock(authorise_clock(at, serial=SERIAL, counter=42, parameter_key=PARAMETER_KEY))
        == 42
    )
    assert (meter.clock, saved) == (at.replace(microsecond=0), [42])
    with pytest.raises(MeterRefusedError):
        await client.set_clock(authorise_clock(START, serial=SERIAL, counter=42, parameter_key=PARAMETER_KEY))
    assert meter.clock == at.replace(microsecond=0)


@pytest.mark.parametrize(
    ("frame", "code", "seq"),
    [
        (encode_request(ReadStatus(), 300)[:-1] + b"\x00", ErrorCode.BAD_CRC, 300),
        (b"\x01\x02\x01", ErrorCode.BAD_LENGTH, 0),
        (encode_frame(0x02, 301, b"", version=9), ErrorCode.UNSUPPORTED_VERSION, 301),
        (encode_frame(0x55, 302, b""), ErrorCode.UNKNOWN_TYPE, 302),
        (encode_frame(0x82, 303, b""), ErrorCode.UNKNOWN_TYPE, 303),
        (encode_frame(0x05, 304, b"\x00"), ErrorCode.BAD_PAYLOAD, 304),
    ],
)
def test_a_bad_frame_is_answered_with_an_error_frame_echoing_what_seq_it_could_read(
    frame: bytes, code: ErrorCode, seq: int
) -> None:
    endpoint = MeterLinkEndpoint(FakeMeter(), READING_KEY, PARAMETER_KEY)
    answer = decode_response(endpoint.handle(frame))
    assert isinstance(answer.message, ErrorResponse)
    assert (answer.message.code, answer.seq) == (code, seq)


def test_the_endpoint_echoes_the_request_sequence_number() -> None:
    endpoint = MeterLinkEndpoint(_meter_with_events(3), READING_KEY, PARAMETER_KEY)
    for seq in (0, 1, 4242, 65535):
        answer = decode_response(endpoint.handle(encode_request(ReadEvents(0, 2), seq)))
        assert answer.seq == seq
        assert isinstance(answer.message, EventsResponse)


def test_the_endpoint_repr_does_not_show_keys() -> None:
    endpoint = MeterLinkEndpoint(FakeMeter(), READING_KEY, PARAMETER_KEY)
    assert READING_KEY.hex() not in repr(endpoint)
    assert repr(READING_KEY) not in repr(endpoint)


class _Replaying:
    """A transport that answers every request with a fixed frame (a confused or malicious relay)."""

    def __init__(self, frame: bytes) -> None:
        self.frame = frame

    async def exchange(self, frame: bytes) -> bytes:
        return self.frame


async def test_the_client_rejects_an_answer_with_another_sequence_number() -> None:
    endpoint = MeterLinkEndpoint(FakeMeter(), READING_KEY, PARAMETER_KEY)
    stale = endpoint.handle(encode_request(ReadStatus(), 99))
    client = MeterLinkClient(_Replaying(stale), first_seq=5)
    with pytest.raises(SequenceMismatchError, match="sent request #5, got the answer to #99"):
        await client.read_status()


async def test_the_client_rejects_an_answer_of_the_wrong_type() -> None:
    endpoint = MeterLinkEndpoint(FakeMeter(), READING_KEY, PARAMETER_KEY)
    client = MeterLinkClient(_Replaying(endpoint.handle(encode_request(ReadStatus(), 1))), first_seq=1)
    with pytest.raises(UnexpectedResponseError, match="READ_REGISTERS was answered with STATUS"):
        await client.read_registers()


async def test_the_client_numbers_requests_and_wraps_at_65535() -> None:
    seen: list[int] = []
    endpoint = MeterLinkEndpoint(FakeMeter(), READING_KEY, PARAMETER_KEY)

    class Recording:
        async def exchange(self, frame: bytes) -> bytes:
            seen.append(int.from_bytes(frame[2:4], "big"))
            return endpoint.handle(frame)

    client = MeterLinkClient(Recording(), first_seq=65534)
    for _ in range(3):
        await client.read_identity()
    assert seen == [65534, 65535, 0]


# --- over a real WebSocket --------------------------------------------------------------------------


@pytest.fixture
async def websocket_meter() -> AsyncIterator[tuple[str, FakeMeter]]:
    """A local WebSocket server serving one fake meter the way the simulator serves
    /sim/meters/{serial}/link: one binary message in, one binary message out."""
    meter = FakeMeter()
    endpoint = MeterLinkEndpoint(meter, READING_KEY, PARAMETER_KEY)

    async def link(connection: ServerConnection) -> None:
        async for message in connection:
            assert isinstance(message, bytes)
            await connection.send(endpoint.handle(message))

    async with serve(link, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/sim/meters/{SERIAL}/link", meter


async def test_a_token_entered_over_websocket_raises_credit_and_the_press_opens_the_valve(
    websocket_meter: tuple[str, FakeMeter],
) -> None:
    url, meter = websocket_meter
    async with await WebSocketTransport.connect(url) as transport:
        client = MeterLinkClient(transport)
        assert (await client.read_identity()).serial == SERIAL
        assert await client.enter_token(TOKEN_OK) is AcceptOutcome.CREDIT_ADDED
        assert await client.press_button() is ValveState.OPEN
        reading = await client.read_status()
    assert (reading.message.status.credit, meter.valve) == (50_000, ValveState.OPEN)
    verify_reading(reading.frame, READING_KEY)


async def test_websocket_requests_from_concurrent_tasks_are_serialised(
    websocket_meter: tuple[str, FakeMeter],
) -> None:
    url, _ = websocket_meter
    async with await WebSocketTransport.connect(url) as transport:
        client = MeterLinkClient(transport)
        readings = await asyncio.gather(*(client.read_registers() for _ in range(10)))
    assert len({r.frame[2:4] for r in readings}) == 10
