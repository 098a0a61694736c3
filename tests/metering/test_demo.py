"""The demo's meter history: each active demo meter has lived about 90 days of a household's cooking, its
last sync is stored as the meter signed it, and the simulator's saved meter agrees with it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from tests.metering.conftest import MASTER, T0, Cgd, make_cgd

from citygas.metering.demo import seed_meter_history
from citygas.metering.models import MeterSnapshot, TokenConfirmation
from citygas.metering.service import consumption_series, estimate_balance, pending_tokens
from citygas.meters.models import Meter
from citygas.meters.simulator import SimulatorHub
from citygas.platform.audit import AuditEntry
from citygas.platform.uow import Database


def test_every_active_demo_meter_gets_ninety_days_and_a_last_sync_the_simulator_agrees_with(
    db: Database, alpha: Cgd, tmp_path: Path
) -> None:
    seeded = seed_meter_history(db, state_dir=tmp_path, master_key=MASTER, now=T0)

    assert sorted(s.serial for s in seeded) == ["ALPM0000001", "ALPM0000002", "ALPM0000003"]
    assert all(s.top_ups >= 1 for s in seeded)
    hub = SimulatorHub(tmp_path, master_key=MASTER, now=lambda: T0)
    with db.unit_of_work(tenant=alpha.tenant.id, read_only=True) as uow:
        for done in seeded:
            meter = uow.session.execute(select(Meter).where(Meter.serial == done.serial)).scalar_one()
            runtime = hub.get(f"{alpha.tenant.id}:{done.serial}")
            assert runtime is not None
            assert runtime.meter.now == T0
            estimate = estimate_balance(uow.session, meter, now=T0)
            assert estimate.synced_at == T0
            assert (
                estimate.estimated_paise == runtime.meter.credit == done.credit
            )  # the app and the meter agree
            assert estimate.daily_litres is not None
            assert (
                250 <= estimate.daily_litres <= 2000
            )  # a household's cooking (0.3-1.4 SCM a day, and more in winter)
            daily = consumption_series(uow.session, meter, kind="daily", periods=90)
            assert len(daily) >= 85
            assert sum(p.litres for p in daily) <= done.cumulative_litres
            assert len(consumption_series(uow.session, meter, kind="monthly", periods=12)) >= 2
            assert pending_tokens(uow.session, meter) == []  # demo credit is not a vend
            assert meter.tariff_on_meter == runtime.meter.status().tariff_paise_per_scm
        confirmations = uow.session.execute(select(func.count()).select_from(TokenConfirmation)).scalar_one()
        audited = uow.session.execute(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "meter.test_token")
        ).scalar_one()
    assert confirmations == audited == sum(s.top_ups for s in seeded)
    state = json.loads(next(tmp_path.glob("*ALPM0000001.json")).read_text())
    assert state["meter"]["clock"] == int(T0.timestamp())


def test_households_differ(db: Database, alpha: Cgd, tmp_path: Path) -> None:
    seeded = seed_meter_history(db, state_dir=tmp_path, master_key=MASTER, now=T0)
    assert len({s.cumulative_litres for s in seeded}) == len(seeded)


def test_seeding_again_leaves_running_meters_alone_and_without_a_simulator_does_nothing(
    db: Database, alpha: Cgd, tmp_path: Path
) -> None:
    seed_meter_history(db, state_dir=tmp_path, master_key=MASTER, now=T0)
    with db.unit_of_work(tenant=alpha.tenant.id, read_only=True) as uow:
        before = uow.session.execute(select(func.count()).select_from(MeterSnapshot)).scalar_one()

    again = seed_meter_history(db, state_dir=tmp_path, master_key=MASTER, now=T0 + timedelta(days=1))
    none = seed_meter_history(db, state_dir=None, master_key=MASTER, now=T0)

    with db.unit_of_work(tenant=alpha.tenant.id, read_only=True) as uow:
        after = uow.session.execute(select(func.count()).select_from(MeterSnapshot)).scalar_one()
    assert (again, none, after) == ([], [], before)


def test_volume_meters_get_history_too(db: Database, tmp_path: Path) -> None:
    cgd = make_cgd(db, "sahyadri", "SCG", [("Eshwar Gowda", "9833333333", True)], mode="volume")

    seeded = seed_meter_history(db, state_dir=tmp_path, master_key=MASTER, now=T0)

    with db.unit_of_work(tenant=cgd.tenant.id, read_only=True) as uow:
        meter = uow.session.execute(select(Meter)).scalar_one()
        estimate = estimate_balance(uow.session, meter, now=T0)
    assert estimate.mode == "volume"
    assert estimate.synced_credit == seeded[0].credit
