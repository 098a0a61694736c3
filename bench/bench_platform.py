"""Foundation overhead: use-case transactions per second (customer registration with its consumer number,
audit entry, hash chain and outbox event) against a bare INSERT of the same row, on SQLite and PostgreSQL.

Figures are medians of several runs on this machine; the ratio says what the paperless-office guarantees
cost per write.
"""

import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("CITYGAS_ENVIRONMENT", "test")

import psycopg
from sqlalchemy import insert, select

from citygas.customers.models import Customer
from citygas.customers.service import do_register_customer
from citygas.platform.context import Actor
from citygas.platform.db import make_engine
from citygas.platform.ids import uuid7
from citygas.platform.migrations import upgrade
from citygas.platform.outbox import emit
from citygas.platform.tenancy import ChargeArea, GeographicalArea, Tenant
from citygas.platform.time import utcnow
from citygas.platform.uow import Database

RUNS = 5
PER_RUN = 300
CLERK = Actor(kind="staff", id=None, label="bench")


def _setup(db: Database) -> tuple[object, object]:
    with db.system() as uow:
        tenant = Tenant(
            slug=f"b{secrets.token_hex(3)}", code=f"B{secrets.token_hex(2).upper()}"[:6], name="Bench Gas"
        )
        uow.session.add(tenant)
        uow.commit()
    with db.unit_of_work(tenant=tenant.id) as uow:
        ga = GeographicalArea(code="GA", name="GA", state="MH")
        uow.session.add(ga)
        uow.session.flush()
        area = ChargeArea(ga_id=ga.id, code="CA", name="Town")
        uow.session.add(area)
        uow.commit()
    return tenant, area


def _rate(fn: Callable[[int], None]) -> float:
    rates = []
    for run in range(RUNS):
        started = time.perf_counter()
        fn(run)
        rates.append(PER_RUN / (time.perf_counter() - started))
    return statistics.median(rates)


def bench(url: str, label: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    db = Database(engine)
    tenant, area = _setup(db)

    def use_case(run: int) -> None:
        for i in range(PER_RUN):
            with db.unit_of_work(tenant=tenant.id, actor=CLERK) as uow:  # type: ignore[attr-defined]
                customer = do_register_customer(
                    uow.session,
                    name=f"Bench {run}-{i}",
                    phone="9812345678",
                    charge_area_code="CA",
                    address="x",
                )
                emit(uow.session, "customer.registered", {"consumer_number": customer.consumer_number})
                uow.because("bench").commit()

    def bare(run: int) -> None:
        for i in range(PER_RUN):
            with engine.begin() as conn:
                conn.execute(
                    insert(Customer).values(
                        id=uuid7(),
                        tenant_id=tenant.id,
                        consumer_number=f"X{run}-{i}",
                        name="Bare",
                        phone="9812345678",  # type: ignore[attr-defined]
                        charge_area_id=area.id,
                        address="x",
                        status="registered",
                        language="en",
                        created_at=utcnow(),
                    )
                )  # type: ignore[attr-defined]

    full = _rate(use_case)
    raw = _rate(bare)
    with db.unit_of_work(tenant=tenant.id, read_only=True) as uow:  # type: ignore[attr-defined]
        assert uow.session.execute(select(Customer.id).limit(1)).first() is not None
    print(
        f"{label:<11} use case (number+audit chain+outbox): {full:8.0f} txn/s   "
        f"bare INSERT: {raw:8.0f} txn/s   "
        f"ratio {raw / full:4.1f}x"
    )
    engine.dispose()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        bench(f"sqlite:///{Path(tmp) / 'bench.db'}", "SQLite")
    name = f"citygas_bench_{secrets.token_hex(3)}"
    try:
        with psycopg.connect(
            "host=127.0.0.1 user=postgres dbname=postgres", autocommit=True, connect_timeout=3
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL not reachable, skipped: {exc}")
        return 0
    try:
        bench(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", "PostgreSQL")
    finally:
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
