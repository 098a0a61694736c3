"""A registered meter as it hangs on the wall: a `SimulatedMeter` keyed as the registry says, to enter the
tokens a test made and read what it credits."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from citygas.meters.model import SimulatedMeter
from citygas.meters.models import MeterModel
from citygas.meters.service import (
    STS_TEST_SGC,
    STS_TEST_VENDING_KEY,
    decoder_key_for,
    do_store_vending_key,
    get_meter,
)
from citygas.meters.types import MeterIdentity, MeterMode, MeterParameters
from citygas.platform.settings import get_settings
from citygas.platform.uow import Database

MASTER = get_settings().master_key_bytes  # what the app under test uses


def add_g16_and_test_key(session: Session, *, mode: str = "currency") -> None:
    """The session's tenant gets meter model "G1.6" (currency: tenths of a rupee; volume: tenths of an SCM)
    and vending key "test", the STS test key."""
    currency = mode == "currency"
    session.add(
        MeterModel(
            code="G1.6",
            name="G1.6",
            manufacturer="M",
            manufacturer_code=96,
            qmax_litres_per_hour=2500,
            mode=mode,
            credit_subclass=6 if currency else 2,
            base_units_per_count=10 if currency else 100,
            token_classes=[0, 1, 2],
        )
    )
    do_store_vending_key(
        session,
        master_key=MASTER,
        key_id="test",
        label="STS test key",
        vending_key=STS_TEST_VENDING_KEY,
        sgc=STS_TEST_SGC,
        is_test_key=True,
    )


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
