"""Fixtures of the BBPS and settlement tests (imported explicitly: tests/payments/conftest.py belongs to
another part). A CGD with a priced charge area, an active meter for Asha Rao, and a BBPS API key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from citygas.identity.service import do_create_api_key
from citygas.meters.service import do_meter_transition, do_register_meter
from citygas.payments.bbps import api as bbps_api
from citygas.payments.bbps import models as bbps_models
from citygas.payments.settlement import models as settlement_models
from citygas.payments.settlement import pages as settlement_pages
from citygas.platform import time as clock
from citygas.platform.settings import Settings
from citygas.platform.tenancy import Tenant
from citygas.platform.time import utcnow
from citygas.platform.uow import Database
from citygas.tariffs.rules import TaxKind
from citygas.tariffs.service import do_set_gas_rate, do_set_tax_rate, get_charge_area
from citygas.vending import models as vending_models
from citygas.web.app import create_app
from tests.meters.test_registry import _setup

# The tables must be known before the session's engine creates them.
MODELS = (bbps_models, settlement_models, vending_models)
EVERYTHING = frozenset({"meter.manage", "meter.install"})
ASHA = "ALP-C-00000001"  # Asha Rao, phone 9812345678, meter SIM1
BINA = "ALP-C-00000002"  # Bina Das, no meter


@dataclass
class Biller:
    client: TestClient
    db: Database
    tenant: Tenant
    key: str

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}


def make_api_key(db: Database, tenant: Tenant, scopes: list[str]) -> str:
    with db.unit_of_work(tenant=tenant.id) as uow:
        _, secret = do_create_api_key(uow.session, name="BBPS BOU", scopes=scopes, created_by="test")
        uow.commit()
    return secret


def priced_tenant_with_meter(db: Database, *, priced_from: datetime | None = None) -> Tenant:
    """With `priced_from`, the clock is frozen there so that vends may be dated from then on."""
    if priced_from is not None:
        clock.freeze(priced_from)
    tenant: Tenant = _setup(db)  # type: ignore[assignment]
    with db.unit_of_work(tenant=tenant.id) as uow:
        s = uow.session
        area = get_charge_area(s, "ALP-CA1")
        now = utcnow()
        do_set_gas_rate(s, charge_area_id=area.id, rate_paise_per_scm=5_000, effective_from=now, now=now)
        do_set_tax_rate(
            s, tax=TaxKind.VAT, region="Maharashtra", percent=Decimal("3"), effective_from=now, now=now
        )
        meter = do_register_meter(
            s, serial="SIM1", sts_meter_number="600727000000000009", model_code="G1.6", vending_key_id="test"
        )
        for action in ("allocate", "install", "commission", "activate"):
            do_meter_transition(
                s,
                meter,
                action,
                permissions=EVERYTHING,
                customer_number=ASHA if action == "install" else None,
            )
        uow.commit()
    return tenant


def biller_app(db: Database, settings: Settings) -> TestClient:
    app = create_app(settings, db=db, run_worker=False)
    known = {getattr(r, "path", "") for r in app.routes}
    for router in (bbps_api.router, settlement_pages.router):
        if not any(getattr(r, "path", "") in known for r in router.routes):
            app.include_router(router)
    return TestClient(app, base_url="http://testserver")


@pytest.fixture
def biller(db: Database, settings: Settings) -> Iterator[Biller]:
    tenant = priced_tenant_with_meter(db)
    key = make_api_key(db, tenant, ["bbps"])
    with biller_app(db, settings) as client:
        yield Biller(client, db, tenant, key)
