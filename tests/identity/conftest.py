"""Fixtures of the identity tests: one CGD, its staff, its customers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher

from citygas.customers.models import Customer
from citygas.customers.service import do_register_customer
from citygas.identity import service as identity_service
from citygas.identity.models import StaffUser
from citygas.platform.tenancy import Tenant
from citygas.platform.uow import Database
from tests.conftest import TEST_ACTOR, make_tenant, make_user

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 at production cost takes ~0.15 s a hash. These tests are about the login rules, not
    the hash cost, so they hash cheaply; the hash is still argon2id and is verified the same way."""
    monkeypatch.setattr(
        identity_service, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
def alpha(db: Database) -> Tenant:
    return make_tenant(db, "alpha", "ALP")


@dataclass(frozen=True)
class Staff:
    id: uuid.UUID
    username: str
    tenant: Tenant


def add_staff(db: Database, tenant: Tenant, username: str, roles: list[str]) -> Staff:
    return Staff(make_user(db, tenant, username, roles, PASSWORD), username, tenant)


def read_user(db: Database, user_id: uuid.UUID) -> StaffUser:
    with db.system(read_only=True) as uow:
        user = uow.session.get(StaffUser, user_id)
        assert user is not None
        return user


def register_customer(db: Database, tenant: Tenant, *, name: str, phone: str) -> Customer:
    with db.unit_of_work(tenant=tenant.id, actor=TEST_ACTOR) as uow:
        customer = do_register_customer(
            uow.session,
            name=name,
            phone=phone,
            charge_area_code=f"{tenant.code}-CA1",
            address="12 Paud Road, Kothrud",
        )
        uow.commit()
        return customer
