"""A registered meter as it hangs on the wall: a `SimulatedMeter` keyed as the registry says, to enter the
tokens a test made and read what it credits."""

from __future__ import annotations

import uuid
from datetime import datetime

from citygas.meters.model import SimulatedMeter
from citygas.meters.service import decoder_key_for, get_meter
from citygas.meters.types import MeterIdentity, MeterMode, MeterParameters
from citygas.platform.uow import Database
from tests.meters.test_registry import MASTER


def meter_on_the_wall(
    db: Database,
    tenant_id: uuid.UUID,
    serial: str,
    *,
    start: datetime,
    tariff_paise_per_scm: int = 5_000,
    base_date: int | None = None,
) -> SimulatedMeter:
    """The G1.6 currency-mode meter `serial` of the tenant, with its registered key (and base date, unless
    `base_date` says the meter still holds another), no emergency credit, its clock at `start`."""
    with db.unit_of_work(tenant=tenant_id, read_only=True) as uow:
        meter = get_meter(uow.session, serial)
        key = decoder_key_for(uow.session, meter, master_key=MASTER)
    identity = MeterIdentity(
        meter.serial,
        meter.sts_meter_number,
        "G1.6",
        96,
        "sim",
        MeterMode.CURRENCY,
        meter.sgc,
        meter.krn,
        meter.ti,
        meter.base_date if base_date is None else base_date,
    )
    return SimulatedMeter(
        identity,
        MeterParameters(low_credit_threshold=0, emergency_credit=0),
        tariff_paise_per_scm=tariff_paise_per_scm,
        decoder_key=key,
        start=start,
    )
