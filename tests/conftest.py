"""Shared fixtures. The same suite runs on SQLite and on PostgreSQL: `CITYGAS_TEST_DB=sqlite|postgresql`.

Each run gets a throwaway database, migrated with Alembic (so the migrations are tested too); each test
starts from empty tables.
"""

from __future__ import annotations

import os
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("CITYGAS_ENVIRONMENT", "test")
os.environ.setdefault("CITYGAS_LOG_JSON", "false")

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from citygas.identity.rules import Role
from citygas.identity.service import do_create_staff_user
from citygas.models import metadata
from citygas.platform import time as clock
from citygas.platform.context import Actor
from citygas.platform.db import make_engine
from citygas.platform.migrations import upgrade
from citygas.platform.settings import Settings
from citygas.platform.tenancy import ChargeArea, GeographicalArea, Tenant
from citygas.platform.uow import Database
from citygas.web.app import create_app

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
TEST_ACTOR = Actor(kind="system", id=None, label="test setup")


def _backend() -> str:
    return os.environ.get("CITYGAS_TEST_DB", "sqlite")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if _backend() == "postgresql":
        name = f"citygas_test_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'citygas-test.db'}"


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    if os.environ.get("CITYGAS_TEST_CREATE_UNMIGRATED_TABLES") == "1":
        # Development aid while a migration is not yet written; CI never sets it, and the schema test
        # then fails until the migration exists.
        metadata.create_all(engine)
    yield engine
    engine.dispose()


def _empty_all_tables(engine: Engine) -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
        else:
            for t in tables:
                conn.execute(text(f'DELETE FROM "{t}"'))


@pytest.fixture
def db(engine: Engine) -> Iterator[Database]:
    _empty_all_tables(engine)
    yield Database(engine)
    clock.freeze(None)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        log_json=False,
        simulator_state_dir=tmp_path / "simulator",
    )


@pytest.fixture
def app_client(db: Database, settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, db=db, run_worker=False)
    with TestClient(app, base_url="http://testserver") as client:
        yield client


@dataclass
class World:
    """Two CGDs with areas, a customer each, and a user per role in each."""

    a: Tenant
    b: Tenant
    password: str = "correct-horse-battery"

    def username(self, tenant: Tenant, role: Role) -> str:
        return f"{tenant.slug}.{role.value}"


def make_tenant(db: Database, slug: str, code: str, *, kind: str = "cgd") -> Tenant:
    with db.unit_of_work(tenant="system", actor=TEST_ACTOR) as uow:
        tenant = Tenant(slug=slug, code=code, name=f"{slug.title()} Gas", kind=kind, state="Maharashtra")
        uow.session.add(tenant)
        uow.commit()
    with db.unit_of_work(tenant=tenant.id, actor=TEST_ACTOR) as uow:
        ga = GeographicalArea(code=f"{code}GA", name=f"{slug.title()} GA", state="Maharashtra")
        uow.session.add(ga)
        uow.session.flush()
        uow.session.add(
            ChargeArea(ga_id=ga.id, code=f"{code}-CA1", name=f"{slug.title()} Town", pincode="411001")
        )
        uow.commit()
    return tenant


def make_user(db: Database, tenant: Tenant, username: str, roles: list[str], password: str) -> uuid.UUID:
    with db.unit_of_work(tenant=tenant.id, actor=TEST_ACTOR) as uow:
        user = do_create_staff_user(
            uow.session,
            username=username,
            full_name=username.replace(".", " ").title(),
            password=password,
            roles=roles,
        )
        uow.commit()
        return user.id


@pytest.fixture
def world(db: Database) -> World:
    a = make_tenant(db, "alpha", "ALP")
    b = make_tenant(db, "bravo", "BRV")
    w = World(a, b)
    for tenant in (a, b):
        for role in Role:
            if role is not Role.OPERATOR_ADMIN:
                make_user(db, tenant, w.username(tenant, role), [role.value], w.password)
    return w


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client: TestClient, username: str, password: str, totp: str = "") -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": username, "password": password, "totp": totp, "csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def csrf_of(client: TestClient, path: str = "/account") -> str:
    return csrf_from(client.get(path).text)


ROOT = Path(__file__).resolve().parent.parent
