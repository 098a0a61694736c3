"""Fixtures and helpers of the auto top-up tests (imported by the test modules, like `conftest_bbps`).

`OutsideSimulator` is the gateway simulator with its store kept outside our database, as a real gateway's
is: what the gateway did (a debit taken) survives a crash that rolls our transaction back, which is the
case the exactly-once tests must face. Everything else about it is the simulator's own code.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygas.customers.models import Customer
from citygas.identity.service import open_web_session
from citygas.meters.models import Meter
from citygas.notifications.ports import LogNotifier, notifier, use_notifier
from citygas.payments.autopay import models as autopay_models
from citygas.payments.autopay import pages as autopay_pages
from citygas.payments.autopay.models import AutopayMandate
from citygas.payments.autopay.rules import AutopayConfig
from citygas.payments.autopay.service import do_confirm_mandate, do_start_mandate
from citygas.payments.autopay.tasks import run_tenant
from citygas.payments.gateway.ports import GatewayError
from citygas.payments.gateway.simulator import GatewaySimulator, simulator_secrets
from citygas.platform import time as clock
from citygas.platform.outbox import OutboxRelay
from citygas.platform.settings import Settings
from citygas.platform.uow import Database
from citygas.vending.models import Vend
from citygas.web.app import create_app
from citygas.web.deps import SESSION_COOKIE
from tests.conftest import csrf_from
from tests.meters.test_registry import MASTER
from tests.vending.conftest import START, Shop

__all__ = ["autopay_models"]  # the tables, for create_all

CONSUMER = "ALP-C-00000001"
PHONE = "9812345678"  # Asha Rao's, the household of ALP-C-00000001
CONFIG = AutopayConfig(notice=timedelta(hours=24), retry_gap=timedelta(hours=6), failures_to_pause=3)
LOW, HIGH = 5_000, 90_000  # estimated balances in paise: below and above the ₹200 threshold


@dataclass
class _Row:
    body: dict[str, Any]


class OutsideSimulator(GatewaySimulator):
    """The simulator, its entities in a dict instead of our database; its webhooks kept in a list."""

    def __init__(self, tenant_id: uuid.UUID) -> None:
        super().__init__(cast(Session, None), simulator_secrets(MASTER, tenant_id))
        self.store: dict[tuple[str, str], _Row] = {}
        self.webhooks: list[tuple[str, dict[str, Any]]] = []

    def _get(self, entity_id: str, kind: str) -> Any:
        row = self.store.get((kind, entity_id))
        if row is None:
            raise GatewayError(f"no {kind} {entity_id}", gateway_code="BAD_REQUEST_ERROR")
        return row

    def _put(self, kind: str, body: dict[str, Any]) -> None:
        self.store[(kind, body["id"])] = _Row(body)

    def _send_webhook(self, event: str, payload: dict[str, Any]) -> None:
        self.webhooks.append((event, payload))

    def entities(self, kind: str) -> list[dict[str, Any]]:
        return [row.body for (k, _), row in self.store.items() if k == kind]


@dataclass
class Household:
    """The demo household with its gas company, its gateway and a balance the test sets."""

    db: Database
    shop: Shop
    gateway: OutsideSimulator
    balance: dict[str, int | None] = field(default_factory=lambda: {"paise": HIGH})
    config: AutopayConfig = CONFIG

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.shop.tenant.id

    def estimate(self, _session: Session, _meter: Meter, _now: datetime) -> int | None:
        return self.balance["paise"]

    def at(self, moment: datetime) -> datetime:
        clock.freeze(moment)
        return moment

    def start(self, **terms: Any) -> AutopayMandate:
        values: dict[str, Any] = {
            "threshold_paise": 20_000,
            "amount_paise": 50_000,
            "max_amount_paise": 200_000,
        }
        values.update(terms)
        with self.db.unit_of_work(tenant=self.tenant_id) as uow:
            customer = uow.session.execute(
                select(Customer).where(Customer.consumer_number == CONSUMER)
            ).scalar_one()
            mandate = do_start_mandate(
                uow.session, self.gateway, customer=customer, vpa="asha.rao@okhdfc", config=CONFIG, **values
            )
            uow.commit()
            return mandate

    def approve(self, mandate: AutopayMandate) -> AutopayMandate:
        approved = self.gateway.approve_mandate(mandate.authorisation_order_id, vpa="asha.rao@okhdfc")
        with self.db.unit_of_work(tenant=self.tenant_id) as uow:
            row = uow.session.get(AutopayMandate, mandate.id)
            assert row is not None
            do_confirm_mandate(
                uow.session,
                self.gateway,
                mandate=row,
                order_id=approved.order_id,
                payment_id=approved.payment_id,
                signature=approved.signature,
            )
            uow.commit()
            return row

    def active_mandate(self) -> AutopayMandate:
        return self.approve(self.start())

    def run(self, now: datetime) -> dict[uuid.UUID, str]:
        self.at(now)
        return run_tenant(
            self.db,
            self.tenant_id,
            estimate=self.estimate,
            master_key=MASTER,
            gateway_factory=lambda _session: self.gateway,
            now=now,
            config=self.config,
        )

    def mandate(self, mandate_id: uuid.UUID) -> AutopayMandate:
        with self.db.unit_of_work(tenant=self.tenant_id, read_only=True) as uow:
            row = uow.session.get(AutopayMandate, mandate_id)
            assert row is not None
            return row

    def rows(self, model: type[Any]) -> list[Any]:
        with self.db.unit_of_work(tenant=self.tenant_id, read_only=True) as uow:
            return list(uow.session.execute(select(model)).scalars())

    def count(self, model: type[Any]) -> int:
        with self.db.unit_of_work(tenant=self.tenant_id, read_only=True) as uow:
            return int(uow.session.execute(select(func.count()).select_from(model)).scalar_one())

    def vends(self) -> list[Vend]:
        return self.rows(Vend)


def sms_to(db: Database, phone: str = PHONE) -> list[str]:
    """Relay the outbox as the worker would; the texts the log SMS adapter sent to `phone`."""
    OutboxRelay(db.write_sessions).relay_once()
    adapter = notifier()
    assert isinstance(adapter, LogNotifier)
    return [m.text for m in adapter.sent if m.to == phone and m.channel == "sms"]


@pytest.fixture
def fresh_sms() -> Iterator[None]:
    previous = notifier()
    use_notifier(LogNotifier())
    yield
    use_notifier(previous)


@pytest.fixture
def household(db: Database, gateway_shop: Shop, fresh_sms: None) -> Household:
    return Household(db, gateway_shop, OutsideSimulator(gateway_shop.tenant.id))


T0 = START + timedelta(hours=1)


# --- the web ---------------------------------------------------------------------------------------------


@pytest.fixture
def autopay_client(
    db: Database, settings: Settings, gateway_shop: Shop, fresh_sms: None
) -> Iterator[TestClient]:
    app = create_app(settings, db=db, run_worker=False)
    included = {getattr(r, "path", "") for r in app.routes}
    if not any(getattr(r, "path", None) in included for r in autopay_pages.router.routes):  # until wired
        app.include_router(autopay_pages.router)
    with TestClient(app, base_url="http://testserver") as client:
        yield client


def log_in(client: TestClient, db: Database, tenant_id: uuid.UUID, consumer_number: str = CONSUMER) -> str:
    """A household session for the connection's phone (as a verified OTP opens); returns its CSRF token."""
    with db.unit_of_work(tenant=tenant_id, read_only=True) as uow:
        customer = uow.session.execute(
            select(Customer).where(Customer.consumer_number == consumer_number)
        ).scalar_one()
    with db.system() as uow:
        token = open_web_session(uow.session, kind="customer", tenant_id=tenant_id, customer_id=customer.id)
        uow.commit()
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, token)
    return csrf_from(client.get("/app/autopay").text)
