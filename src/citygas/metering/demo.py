"""Demo history for `citygas demo seed`: about 90 days of household cooking on every active simulated meter,
and a "last sync" of its signed readings, so the app's charts and balance estimate have data on first login.

Each meter is the simulator's own (`sim_pages.runtime_for`, the same household as the live simulator), made
as the factory would at the start of the history and fast-forwarded through the pure meter model: the
household cooks day by day and tops up each morning the meter shows low credit (or a closed valve). The
top-ups are demo credit minted with the published STS *test* vending key, exactly as `citygas meter
test-token` mints it (TID from the registry, written to the audit log); a meter keyed with a real vending key
is skipped, because real credit only ever comes from a paid vend. At the end the meter is read over its own
link endpoint and the signed frames go through `do_upload_readings`, so what is stored is what the meter
signed, and the state saved for the live simulator is the meter that signed it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.metering.rules import rate_in_force
from citygas.metering.service import do_upload_readings, gas_rate_versions
from citygas.meters.keys import meter_link_keys
from citygas.meters.link import (
    EventsResponse,
    MeterLinkEndpoint,
    ReadEvents,
    ReadRegisters,
    ReadSnapshots,
    ReadStatus,
    SnapshotKind,
    SnapshotsResponse,
    decode_response,
    encode_request,
)
from citygas.meters.models import Meter, MeterModel, VendingKey
from citygas.meters.service import allocate_tid, decoder_key_for
from citygas.meters.sim_pages import runtime_for
from citygas.meters.simulator import MeterRuntime, SimulatorHub
from citygas.meters.types import Alarm, MeterMode, ValveState
from citygas.platform import audit
from citygas.platform.context import Actor
from citygas.platform.time import utcnow
from citygas.platform.uow import Database
from citygas.sts import AmountConvention, issue_metered_credit

__all__ = [
    "DEMO_HISTORY_ACTOR",
    "DEMO_HISTORY_DAYS",
    "SeededMeter",
    "read_signed_frames",
    "seed_meter_history",
]

DEMO_HISTORY_ACTOR: Final = Actor(kind="system", id=None, label="demo meter history")
DEMO_HISTORY_DAYS: Final = 90
_IST: Final = timedelta(hours=5, minutes=30)
_INSTALLED_AT: Final = timedelta(hours=11)  # the installer commissions the meter late morning (IST)
_TOPS_UP_AT: Final = timedelta(hours=9)  # and the household checks the meter after breakfast


@dataclass(frozen=True)
class SeededMeter:
    serial: str
    credit: int  # the meter's credit register at the end (paise, or litres on volume meters)
    cumulative_litres: int
    top_ups: int


def read_signed_frames(endpoint: MeterLinkEndpoint, *, after_seq: int = 0) -> list[bytes]:
    """What the app reads in a sync, straight from a meter endpoint: status, registers, every page of
    monthly and daily snapshots, and the events after `after_seq` — as the signed frames the meter sent."""
    seq = 0

    def ask(request: ReadStatus | ReadRegisters | ReadSnapshots | ReadEvents) -> bytes:
        nonlocal seq
        seq = (seq + 1) & 0xFFFF
        return endpoint.handle(encode_request(request, seq))

    frames = [ask(ReadStatus()), ask(ReadRegisters())]
    for kind in (SnapshotKind.MONTHLY, SnapshotKind.DAILY):
        offset = 0
        while True:
            frame = ask(ReadSnapshots(kind, offset))
            page = decode_response(frame).message
            assert isinstance(page, SnapshotsResponse)
            frames.append(frame)
            offset = page.offset + len(page.snapshots)
            if not page.snapshots or offset >= page.total:
                break
    while True:
        frame = ask(ReadEvents(after_seq))
        events = decode_response(frame).message
        assert isinstance(events, EventsResponse)
        frames.append(frame)
        if not events.more or not events.events:
            break
        after_seq = events.events[-1].seq
    return frames


def _ist_midnight(moment: datetime) -> datetime:
    local = moment + _IST
    return datetime(local.year, local.month, local.day, tzinfo=UTC) - _IST


def seed_meter_history(
    db: Database,
    *,
    state_dir: Path | None,
    master_key: bytes,
    now: datetime | None = None,
    days: int = DEMO_HISTORY_DAYS,
) -> list[SeededMeter]:
    """Give every active simulated meter of every tenant `days` of history ending `now`, saved where the
    live simulator finds it (`state_dir`), and a stored last sync. A meter the simulator already runs is left
    alone. Without a simulator state directory there is no simulator to agree with, so nothing is done."""
    if state_dir is None:
        return []
    end = (now or utcnow()).astimezone(UTC).replace(microsecond=0)
    start = _ist_midnight(end - timedelta(days=days)) + _INSTALLED_AT
    with db.system(read_only=True) as uow:
        rows = uow.session.execute(
            select(Meter.tenant_id, Meter.id)
            .where(Meter.simulated.is_(True), Meter.state == "active", Meter.customer_id.is_not(None))
            .order_by(Meter.tenant_id, Meter.serial)
        ).all()
    hub = SimulatorHub(state_dir, master_key=master_key, now=lambda: start)
    seeded: list[SeededMeter] = []
    for tenant_id, meter_id in rows:
        with db.unit_of_work(tenant=tenant_id, actor=DEMO_HISTORY_ACTOR) as uow:
            meter = uow.session.get(Meter, meter_id)
            assert meter is not None
            done = _seed_meter(uow.session, hub, meter, master_key=master_key, end=end)
            if done is None:
                continue
            uow.because("demo meter history").commit()
            seeded.append(done)
    return seeded


def _seed_meter(
    session: Session, hub: SimulatorHub, meter: Meter, *, master_key: bytes, end: datetime
) -> SeededMeter | None:
    key = session.get(VendingKey, meter.vending_key_id)
    model = session.get(MeterModel, meter.model_id)
    if key is None or model is None or not key.is_test_key:
        return None  # real keys mint no demo credit
    if hub.get(f"{meter.tenant_id}:{meter.serial}") is not None:
        return None  # the simulator already runs this meter: its history is its own
    runtime = runtime_for(hub, session, meter)
    simulated = runtime.meter
    rate = rate_in_force(
        gas_rate_versions(session, meter), simulated.now, fallback=simulated.status().tariff_paise_per_scm
    )
    currency = model.mode == MeterMode.CURRENCY.value
    if currency:
        # The installer programs the CGD's price at commissioning, so the meter charges what the app shows.
        simulated.set_tariff(rate)
        meter.tariff_on_meter = rate
    amount = runtime.household.top_up_paise if currency else runtime.household.top_up_paise * 1000 // rate
    top_up = _minter(session, meter, model, master_key=master_key, base_units=amount)
    top_ups = 0

    def top_up_now() -> None:
        nonlocal top_ups
        simulated.enter_token(top_up(simulated.now))
        top_ups += 1
        if simulated.valve is ValveState.ARMED:
            simulated.press_button()

    top_up_now()  # the connection's first top-up, at commissioning
    day = _ist_midnight(simulated.now) + timedelta(days=1)
    while simulated.now < end:
        checks_at = min(end, day + _TOPS_UP_AT)
        runtime.run_until(checks_at)
        status = simulated.status()
        if simulated.now < end and (Alarm.LOW_CREDIT in status.alarms or status.valve is not ValveState.OPEN):
            top_up_now()
        runtime.run_until(min(end, day + timedelta(days=1)))
        day += timedelta(days=1)
    _sync(session, hub, runtime, meter, master_key=master_key, at=end)
    registers = simulated.registers()
    return SeededMeter(meter.serial, simulated.credit, registers.cumulative_litres, top_ups)


def _minter(
    session: Session, meter: Meter, model: MeterModel, *, master_key: bytes, base_units: int
) -> Callable[[datetime], str]:
    """Demo credit tokens for this meter, each with the next TID from the registry, audited."""
    decoder_key = decoder_key_for(session, meter, master_key=master_key)
    unit = "paise" if model.mode == MeterMode.CURRENCY.value else "litres"
    convention = AmountConvention(model.credit_subclass, unit, model.base_units_per_count)

    def mint(at: datetime) -> str:
        tid = allocate_tid(session, meter, now=at)
        credit = issue_metered_credit(
            decoder_key=decoder_key, convention=convention, base_units=base_units, tid=tid, ken=meter.ken
        )
        audit.record(
            session,
            action="meter.test_token",
            entity_type="meter",
            entity_id=str(meter.id),
            after={
                "tid": tid,
                unit: credit.carried_base_units,
                "key": "STS test key",
                "purpose": "demo history",
            },
        )
        return credit.token

    return mint


def _sync(
    session: Session,
    hub: SimulatorHub,
    runtime: MeterRuntime,
    meter: Meter,
    *,
    master_key: bytes,
    at: datetime,
) -> uuid.UUID | None:
    reading_key, parameter_key = meter_link_keys(master_key, meter.tenant_id, meter.serial)
    endpoint = MeterLinkEndpoint(
        runtime.meter, reading_key, parameter_key, last_parameter_counter=runtime.parameter_counter
    )
    result = do_upload_readings(
        session,
        meter=meter,
        frames=read_signed_frames(endpoint),
        master_key=master_key,
        source="system",
        uploaded_by=DEMO_HISTORY_ACTOR.label,
        now=at,
    )
    hub.save(runtime)
    return result.upload_id
