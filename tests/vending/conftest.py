"""A CGD ready to vend: tariff and VAT in force, a household with an active currency-mode meter."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygas.meters.model import SimulatedMeter
from citygas.meters.rules import sts_meter_number
from citygas.meters.service import do_meter_transition, do_register_meter
from citygas.platform.tenancy import ChargeArea, Tenant
from citygas.platform.uow import Database
from citygas.tariffs.rules import TaxKind
from citygas.tariffs.service import do_set_gas_rate, do_set_tax_rate
from tests.meters.test_registry import _setup
from tests.support.meters import meter_on_the_wall

RATE = 4_850  # paise per SCM before VAT
VAT = Decimal("3")
START = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)


@dataclass
class Shop:
    tenant: Tenant
    consumer_number: str = "ALP-C-00000001"
    serial: str = "SN0001"


def price_every_area(session: Session, since: datetime) -> None:
    """VAT in Maharashtra and the gas RATE in every charge area of the session's tenant, from `since`."""
    do_set_tax_rate(
        session, tax=TaxKind.VAT, region="Maharashtra", percent=VAT, effective_from=since, now=since
    )
    for area in session.execute(select(ChargeArea)).scalars():
        do_set_gas_rate(
            session, charge_area_id=area.id, rate_paise_per_scm=RATE, effective_from=since, now=since
        )


def ready_to_vend(db: Database, *, rates_from: datetime) -> Tenant:
    """A CGD whose first household (ALP-C-00000001) has an active currency-mode meter SN0001, with the gas
    rate and VAT in force from `rates_from`."""
    tenant = _setup(db)
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        s = uow.session
        price_every_area(s, rates_from)
        meter = do_register_meter(
            s, serial="SN0001", sts_meter_number=sts_meter_number(1), model_code="G1.6", vending_key_id="test"
        )
        for action in ("allocate", "install", "commission", "activate"):
            do_meter_transition(
                s,
                meter,
                action,
                permissions=frozenset({"meter.manage", "meter.install"}),
                customer_number="ALP-C-00000001" if action == "install" else None,
            )
        uow.commit()
    return tenant  # type: ignore[return-value]


@pytest.fixture
def shop(db: Database) -> Shop:
    return Shop(ready_to_vend(db, rates_from=START - timedelta(days=1)))


def simulated_meter(db: Database, shop: Shop) -> SimulatedMeter:
    """The household's meter as it hangs on the wall, keyed as the registry says."""
    return meter_on_the_wall(db, shop.tenant.id, shop.serial, start=START)
