"""Fixtures of the CSC agent and receipt tests (imported explicitly by tests/payments/test_csc*.py, whose
folder's conftest belongs to another part): a CGD with a priced charge area, Asha Rao's active
currency-mode meter, a CSC agent with a profile (1.5 % commission, capped at ₹20) and a back office user."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from citygas.identity import service as identity_service
from citygas.ledger.rules import AccountCode
from citygas.ledger.service import get_balance
from citygas.meters.model import SimulatedMeter
from citygas.payments.csc import models as csc_models
from citygas.payments.csc import pages as csc_pages
from citygas.payments.csc.models import CscAgent
from citygas.payments.csc.service import (
    do_approve_float_topup,
    do_create_agent,
    do_request_float_topup,
)
from citygas.platform import time as clock
from citygas.platform.context import Actor
from citygas.platform.settings import Settings
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import Database
from citygas.receipts import pages as receipt_pages
from citygas.tariffs.rules import percent_commission
from citygas.vending import models as vending_models
from citygas.web.app import create_app
from tests.conftest import make_user
from tests.support.meters import meter_on_the_wall
from tests.vending.conftest import ready_to_vend

# The tables must be known before the session's engine creates them.
MODELS = (csc_models, vending_models)

NOW = datetime(2026, 12, 4, 6, 30, tzinfo=UTC)  # 12:00 IST
PASSWORD = "a-long-password-1"
APPROVER = frozenset({"float.approve"})
OFFICE = Actor(kind="staff", id=None, label="Back Office")


@dataclass
class Csc:
    tenant: Tenant
    agent_id: uuid.UUID
    agent_user: uuid.UUID
    consumer_number: str = "ALP-C-00000001"
    serial: str = "SN0001"

    def agent(self, session: object) -> CscAgent:
        found = session.get(CscAgent, self.agent_id)  # type: ignore[attr-defined]
        assert found is not None
        return found  # type: ignore[no-any-return]


@pytest.fixture
def csc(db: Database, monkeypatch: pytest.MonkeyPatch) -> Csc:
    monkeypatch.setattr(
        identity_service, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    clock.freeze(NOW)
    tenant = ready_to_vend(db, rates_from=NOW - timedelta(days=1))
    agent_user = make_user(db, tenant, "alpha.vle", ["csc_agent"], PASSWORD)  # type: ignore[arg-type]
    make_user(db, tenant, "alpha.office", ["back_office"], PASSWORD)  # type: ignore[arg-type]
    with db.unit_of_work(tenant=tenant.id) as uow:  # type: ignore[attr-defined]
        agent = do_create_agent(
            uow.session,
            username="alpha.vle",
            csc_id="CSC-0042",
            village="Rampur",
            rule=percent_commission(Decimal("1.5"), cap_paise=2_000),
        )
        uow.commit()
    return Csc(tenant, agent.id, agent_user)  # type: ignore[arg-type]


def fund(db: Database, csc: Csc, paise: int, reference: str = "UTR0001") -> None:
    """The agent paid `paise` into the CGD's bank and the back office approved it."""
    with db.unit_of_work(tenant=csc.tenant.id, actor=OFFICE) as uow:
        topup = do_request_float_topup(
            uow.session, csc.agent(uow.session), amount_paise=paise, reference=reference, requested_by="test"
        )
        do_approve_float_topup(uow.session, topup, permissions=APPROVER)
        uow.commit()


def float_of(db: Database, csc: Csc) -> int:
    with db.unit_of_work(tenant=csc.tenant.id, read_only=True) as uow:
        return get_balance(uow.session, AccountCode.AGENT_FLOAT, str(csc.agent_id))


def simulated_meter(db: Database, csc: Csc) -> SimulatedMeter:
    """Asha's meter as it hangs on the wall, keyed as the registry says."""
    return meter_on_the_wall(db, csc.tenant.id, csc.serial, start=NOW)


@pytest.fixture
def csc_client(db: Database, settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, db=db, run_worker=False)
    app.include_router(csc_pages.router)
    for router in receipt_pages.ROUTERS:
        app.include_router(router)
    with TestClient(app, base_url="http://testserver") as client:
        yield client
