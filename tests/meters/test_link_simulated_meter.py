"""The meter link in front of the real meter model (SimulatedMeter): an STS token vended for the meter
goes in over the link, the valve re-arms on the button press, and what the meter signs verifies."""

from __future__ import annotations

from datetime import timedelta

import pytest

from citygas.meters.link import (
    ErrorCode,
    InProcessTransport,
    MeterLinkClient,
    MeterLinkEndpoint,
    MeterRefusedError,
    SnapshotKind,
    authorise_clock,
    authorise_parameters,
    derive_meter_parameter_key,
    derive_meter_reading_key,
    verify_reading,
)
from citygas.meters.model import SimulatedMeter
from citygas.meters.types import EventCode, MeterParameters, ValveState
from citygas.sts import AcceptOutcome
from tests.meters.test_model import Vendor, make_meter

pytestmark = pytest.mark.anyio
ROOT = bytes(range(32, 64))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _linked(meter: SimulatedMeter) -> tuple[MeterLinkClient, bytes, bytes]:
    serial = meter.identity().serial
    reading_key = derive_meter_reading_key(ROOT, serial)
    parameter_key = derive_meter_parameter_key(ROOT, serial)
    endpoint = MeterLinkEndpoint(meter, reading_key, parameter_key)
    return MeterLinkClient(InProcessTransport(endpoint)), reading_key, parameter_key


async def test_a_vended_token_over_the_link_adds_credit_and_the_press_opens_the_valve() -> None:
    meter, vendor = make_meter(), Vendor()
    client, reading_key, _ = _linked(meter)
    token = vendor.credit(meter, 50_000).token

    assert await client.enter_token(token) is AcceptOutcome.CREDIT_ADDED
    armed = await client.read_status()
    assert (armed.message.status.credit, armed.message.status.valve) == (50_000, ValveState.ARMED)
    assert await client.press_button() is ValveState.OPEN
    assert await client.enter_token(token) is AcceptOutcome.USED_ERROR
    assert verify_reading(armed.frame, reading_key) == armed.message


async def test_the_meters_registers_and_events_come_signed() -> None:
    meter, vendor = make_meter(), Vendor()
    client, reading_key, _ = _linked(meter)
    await client.enter_token(vendor.credit(meter, 20_000).token)

    registers = await client.read_registers()
    events = await client.read_events_since(0)
    assert registers.message.registers.tokens_accepted == 1
    assert EventCode.TOKEN_ACCEPTED in {e.code for page in events for e in page.message.events}
    verify_reading(registers.frame, reading_key)
    for page in events:
        verify_reading(page.frame, reading_key)


async def test_daily_snapshots_are_read_in_pages() -> None:
    meter = make_meter()
    meter.advance_clock(meter.now + timedelta(days=40))
    client, reading_key, _ = _linked(meter)
    pages = await client.read_all_snapshots(SnapshotKind.DAILY)
    assert [s for p in pages for s in p.message.snapshots] == meter.daily_snapshots()
    for page in pages:
        verify_reading(page.frame, reading_key)


async def test_authorised_parameters_and_clock_reach_the_model_once() -> None:
    meter = make_meter()
    client, _, parameter_key = _linked(meter)
    serial = meter.identity().serial
    new = MeterParameters(low_credit_threshold=7_500, emergency_credit=0, friendly_hours=None)

    assert (
        await client.set_parameters(
            authorise_parameters(new, serial=serial, counter=1, parameter_key=parameter_key)
        )
        == 1
    )
    assert meter.parameters() == new
    later = meter.now + timedelta(hours=3)
    assert (
        await client.set_clock(authorise_clock(later, serial=serial, counter=2, parameter_key=parameter_key))
        == 2
    )
    assert meter.now == later.replace(microsecond=0)

    with pytest.raises(MeterRefusedError) as refused:
        await client.set_parameters(
            authorise_parameters(new, serial=serial, counter=2, parameter_key=parameter_key)
        )
    assert refused.value.code is ErrorCode.REPLAYED_COUNTER
