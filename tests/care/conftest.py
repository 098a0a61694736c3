"""Fixtures of the care and profile tests: a CGD ready to vend (alpha) whose household Asha has two
connections and a meter, a neighbour household (Bina), another CGD (bravo) with a household of its own,
care staff, and clients logged in as each."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citygas.care import pages as care_pages
from citygas.care import tasks as care_tasks
from citygas.customers import profile_pages, profile_tasks
from citygas.customers.models import Customer
from citygas.identity import service as identity_service
from citygas.identity.service import open_web_session
from citygas.notifications.ports import LogNotifier, notifier, use_notifier
from citygas.platform import time as clock
from citygas.platform.outbox import OutboxRelay
from citygas.platform.settings import Settings
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import Database
from citygas.vending.rules import Channel, VendRequest
from citygas.vending.service import do_vend
from citygas.web.app import create_app
from citygas.web.deps import SESSION_COOKIE
from tests.conftest import csrf_from, login, make_tenant, make_user
from tests.identity.conftest import register_customer
from tests.meters.test_registry import MASTER
from tests.vending.conftest import START, ready_to_vend

__all__ = ["care_tasks", "profile_tasks"]  # their handlers and jobs register on import

PASSWORD = "a-long-password-1"
ASHA_PHONE = "9812345678"  # ALP-C-00000001 (meter SN0001) and ALP-C-00000003
BINA_PHONE = "9812345679"  # ALP-C-00000002
BRAVO_PHONE = "9822200011"  # BRV-C-00000001


@dataclass
class Care:
    alpha: Tenant
    bravo: Tenant
    asha: Customer  # the connection Asha logs in with
    asha_second: Customer
    bina: Customer
    bravo_customer: Customer
    staff: dict[str, uuid.UUID]  # username → id


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 for the staff these tests create; the login rules are tested elsewhere."""
    monkeypatch.setattr(
        identity_service, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture(autouse=True)
def fresh_sms_log() -> Iterator[LogNotifier]:
    previous = notifier()
    adapter = LogNotifier()
    use_notifier(adapter)
    yield adapter
    use_notifier(previous)


@pytest.fixture
def care(db: Database) -> Iterator[Care]:
    clock.freeze(START)
    alpha = ready_to_vend(db, rates_from=START - timedelta(days=1))
    asha_second = register_customer(db, alpha, name="Asha Rao", phone=ASHA_PHONE)
    bravo = make_tenant(db, "bravo", "BRV")
    bravo_customer = register_customer(db, bravo, name="Chitra Bose", phone=BRAVO_PHONE)
    with db.unit_of_work(tenant=alpha.id, read_only=True) as uow:
        customers = {c.consumer_number: c for c in uow.session.execute(select(Customer)).scalars()}
    staff: dict[str, uuid.UUID] = {}
    for tenant in (alpha, bravo):
        for role in ("care_agent", "back_office", "csc_agent", "field_supervisor", "cgd_manager"):
            name = f"{tenant.slug}.{role}"
            staff[name] = make_user(db, tenant, name, [role], PASSWORD)
    yield Care(
        alpha=alpha,
        bravo=bravo,
        asha=customers["ALP-C-00000001"],
        asha_second=asha_second,
        bina=customers["ALP-C-00000002"],
        bravo_customer=bravo_customer,
        staff=staff,
    )
    clock.freeze(None)


def vend_for(db: Database, care: Care, *, key: str = "care-test-vend-1", amount: int = 50_000) -> list[str]:
    """A top-up for Asha's metered connection; returns its tokens."""
    with db.unit_of_work(tenant=care.alpha.id) as uow:
        outcome = do_vend(
            uow.session,
            VendRequest(
                channel=Channel.ONLINE,
                amount_paise=amount,
                idempotency_key=key,
                consumer_number="ALP-C-00000001",
            ),
            master_key=MASTER,
        )
        uow.commit()
        return [t["token"] for t in outcome.vend.tokens]


@pytest.fixture
def app(db: Database, settings: Settings, care: Care) -> Iterator[TestClient]:
    application = create_app(settings, db=db, run_worker=False)
    included = {getattr(r, "path", "") for r in application.routes}
    for router in (care_pages.router, profile_pages.router):
        if not any(getattr(r, "path", None) in included for r in router.routes):  # until app.py wires them
            application.include_router(router)
    with TestClient(application, base_url="http://testserver") as client:
        yield client


def household_client(app: TestClient, db: Database, customer: Customer) -> TestClient:
    """A browser logged in as the household of `customer` (the session a verified OTP opens)."""
    with db.system() as uow:
        cookie = open_web_session(
            uow.session, kind="customer", tenant_id=customer.tenant_id, customer_id=customer.id
        )
        uow.commit()
    return TestClient(app.app, base_url="http://testserver", cookies={SESSION_COOKIE: cookie})


def staff_client(app: TestClient, username: str) -> TestClient:
    client = TestClient(app.app, base_url="http://testserver")
    login(client, username, PASSWORD)
    return client


def csrf(client: TestClient, path: str) -> str:
    return csrf_from(client.get(path).text)


def relay(db: Database) -> None:
    """Run the outbox as the worker would (handlers, SMS)."""
    while OutboxRelay(db.write_sessions).relay_once():
        pass


def count(db: Database, tenant: Tenant, model: type[object]) -> int:
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:
        return int(uow.session.execute(select(func.count()).select_from(model)).scalar_one())
