"""Vends per second end to end through the HTTP API on PostgreSQL, server and load generator on this machine,
with p50/p99 latency, against the limit: bare database transactions doing the same writes, same run (one
vend each, as the vend was written before batches, and BARE_BATCH vends each, as a batch writes them).

Setup: a throwaway PostgreSQL database, one CGD with HOUSEHOLDS active currency-mode meters on the STS test
key, WEB_PROCESSES web processes (`citygas serve`, one worker each, on their own ports, the client spreading
its connections over them as a load balancer would: uvicorn's own `--workers N` shares one listening
socket, and the first process to wake up accepts all the connections, leaving the other idle), and
an asyncio client keeping CONCURRENCY requests in flight over keep-alive connections. The client speaks
plain HTTP/1.1 on asyncio streams: a general-purpose client (httpx) spent more CPU per request than the
server's vend, on the same two cores.
"""

import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("CITYGAS_ENVIRONMENT", "test")

import httpx
import psycopg

from citygas.customers.service import do_register_customer
from citygas.identity.service import do_create_api_key
from citygas.meters.models import MeterModel
from citygas.meters.rules import sts_meter_number
from citygas.meters.service import (
    STS_TEST_SGC,
    STS_TEST_VENDING_KEY,
    do_meter_transition,
    do_register_meter,
    do_store_vending_key,
)
from citygas.models import metadata
from citygas.platform.db import make_engine
from citygas.platform.migrations import upgrade
from citygas.platform.settings import get_settings
from citygas.platform.tenancy import ChargeArea, GeographicalArea, Tenant
from citygas.platform.time import utcnow
from citygas.platform.uow import Database
from citygas.tariffs.rules import TaxKind
from citygas.tariffs.service import do_set_gas_rate, do_set_tax_rate

HOUSEHOLDS = 600  # five vends a day each at most: enough for the warm-up and the run
VENDS = 2_000
WARM_UP = 200  # vends before the measured ones: statements compiled and prepared, pools full
CONCURRENCY = 24  # 500 vends a second at ~45 ms each: ~24 callers in flight (Little's law)
WEB_PROCESSES = 2
BARE_VENDS = 1_600
BARE_BATCH = 8  # about what a batch holds in the run (see "database transactions per vend")
CITYGAS = Path(sys.executable).parent / "citygas"
ALL = frozenset({"meter.manage", "meter.install"})


def seed(url: str) -> str:
    engine = make_engine(url)
    upgrade(engine)
    metadata.create_all(engine)  # a throwaway database: also any table whose migration is not written yet
    db = Database(engine)
    master = get_settings().master_key_bytes
    with db.system() as uow:
        tenant = Tenant(slug="bench", code="BEN", name="Bench Gas", state="Maharashtra")
        uow.session.add(tenant)
        uow.commit()
    earlier = utcnow() - timedelta(days=1)
    with db.unit_of_work(tenant=tenant.id) as uow:
        s = uow.session
        ga = GeographicalArea(code="GA", name="GA", state="Maharashtra")
        s.add(ga)
        s.flush()
        area = ChargeArea(ga_id=ga.id, code="CA", name="Town")
        s.add(area)
        s.flush()
        do_set_tax_rate(
            s,
            tax=TaxKind.VAT,
            region="Maharashtra",
            percent=Decimal("3"),
            effective_from=earlier,
            now=earlier,
        )
        do_set_gas_rate(
            s, charge_area_id=area.id, rate_paise_per_scm=4_850, effective_from=earlier, now=earlier
        )
        s.add(
            MeterModel(
                code="G1.6",
                name="G1.6",
                manufacturer="M",
                manufacturer_code=96,
                qmax_litres_per_hour=2500,
                mode="currency",
                credit_subclass=6,
                base_units_per_count=10,
                token_classes=[0, 1, 2],
            )
        )
        do_store_vending_key(
            s,
            master_key=master,
            key_id="test",
            label="STS test key",
            vending_key=STS_TEST_VENDING_KEY,
            sgc=STS_TEST_SGC,
            is_test_key=True,
        )
        for n in range(1, HOUSEHOLDS + 1):
            customer = do_register_customer(
                s, name=f"House {n}", phone="9812345678", charge_area_code="CA", address="x"
            )
            meter = do_register_meter(
                s,
                serial=f"B{n:06d}",
                sts_meter_number=sts_meter_number(n),
                model_code="G1.6",
                vending_key_id="test",
            )
            for action in ("allocate", "install", "commission", "activate"):
                do_meter_transition(
                    s,
                    meter,
                    action,
                    permissions=ALL,
                    customer_number=customer.consumer_number if action == "install" else None,
                )
            meter.tariff_on_meter = 4_850  # as after a first vend: one credit token per vend
        _, secret = do_create_api_key(s, name="bench", scopes=["vend"], created_by="bench")
        uow.commit()
    engine.dispose()
    return secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(ports: list[int], key: str, first: int, vends: int) -> tuple[float, list[float], int]:
    """Vends `first` .. `first + vends - 1` (each its own key and a household in turn), CONCURRENCY at a
    time; vends a second, each one's latency, and how many failed."""
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(first, first + vends):
        queue.put_nowait(n)

    async def worker(port: int) -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not queue.empty():
                n = queue.get_nowait()
                consumer = f"BEN-C-{(n % HOUSEHOLDS) + 1:08d}"
                body = json.dumps({"consumer_number": consumer, "amount_paise": 50_000}).encode()
                started = time.perf_counter()
                writer.write(
                    b"POST /api/v1/vends HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + f"Authorization: Bearer {key}\r\nIdempotency-Key: bench-{n}\r\n".encode()
                    + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                status = await _response_status(reader)
                latencies.append(time.perf_counter() - started)
                if status != 201:
                    failures += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(ports[i % len(ports)]) for i in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    return vends / elapsed, latencies, failures


async def _response_status(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response off a keep-alive connection; its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    return status


def _commits(database: str) -> int:
    """Transactions committed in the bench's database so far (the statistics collector's count)."""
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute("SELECT pg_stat_clear_snapshot()")
        row = c.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (database,)).fetchone()
        return int(row[0]) if row else 0


def bare_transactions(dsn: str, vends_each: int) -> float:
    """The same writes as `vends_each` vends, as plain SQL in one transaction (a statement per kind of row,
    as a batch writes them), on one connection: the database's own limit here, in vends a second."""
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TEMP TABLE w (id bigserial primary key, tenant uuid, k text, v jsonb)")
        conn.execute("CREATE TEMP TABLE c (id int primary key, n bigint)")
        conn.execute("INSERT INTO c VALUES (1, 0), (2, 0), (3, 0), (4, 0)")
        conn.commit()
        transactions = BARE_VENDS // vends_each
        started = time.perf_counter()
        for n in range(transactions):
            keys = [f"{n}-{i}" for i in range(vends_each)]
            with conn.transaction():
                for _ in range(9):  # claim, vend, entry, postings, balances, outbox, audit, ...
                    conn.execute(
                        "INSERT INTO w (tenant, k, v) "
                        "SELECT gen_random_uuid(), k, '{}' FROM unnest(%s::text[]) k",
                        (keys,),
                    )
                for row in (1, 2, 3, 4):  # TIDs, receipt numbers, audit head, balance slices
                    conn.execute("UPDATE c SET n = n + %s WHERE id = %s", (vends_each, row))
        return transactions * vends_each / (time.perf_counter() - started)


def main() -> int:
    name = f"citygas_bench_{secrets.token_hex(3)}"
    try:
        with psycopg.connect(
            "host=127.0.0.1 user=postgres dbname=postgres", autocommit=True, connect_timeout=3
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL not reachable, skipped: {exc}")
        return 0
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    servers: list[subprocess.Popen[bytes]] = []
    try:
        key = seed(url)
        env = {
            **os.environ,
            "CITYGAS_DATABASE_URL": url,
            "CITYGAS_ENVIRONMENT": "test",
            "CITYGAS_LOG_LEVEL": "WARNING",
            "CITYGAS_RUN_WORKER_IN_PROCESS": "false",
            "CITYGAS_SIMULATOR": "false",
        }
        ports = [free_port() for _ in range(WEB_PROCESSES)]
        for port in ports:
            servers.append(
                subprocess.Popen(
                    [str(CITYGAS), "serve", "--port", str(port), "--workers", "1"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in ports:
            for _ in range(100):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
        asyncio.run(load(ports, key, 0, WARM_UP))
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={name}", autocommit=True) as c:
            # Statistics, as autovacuum keeps them on a live system: without them the planner takes the
            # freshly loaded tables for empty and reads a customer's vends through the tenant's index.
            c.execute("ANALYZE")
        commits = _commits(name)
        rate, latencies, failures = asyncio.run(load(ports, key, WARM_UP, VENDS))
        per_vend = (_commits(name) - commits) / VENDS
        dsn = f"host=127.0.0.1 user=postgres dbname={name}"
        bare, bare_batched = bare_transactions(dsn, 1), bare_transactions(dsn, BARE_BATCH)
        q = statistics.quantiles(latencies, n=100)
        print(
            f"vends through the HTTP API (PostgreSQL, {WEB_PROCESSES} web processes, "
            f"{CONCURRENCY} in flight): "
            f"{rate:8.0f} vends/s"
        )
        print(
            f"latency p50 {q[49] * 1000:6.1f} ms   p99 {q[98] * 1000:6.1f} ms   failures {failures}/{VENDS}"
        )
        print(f"database transactions per vend: {per_vend:4.2f} (vends written together share one)")
        print(
            f"bare transactions with the same writes (one connection): {bare:6.0f} vends/s one vend each, "
            f"{bare_batched:6.0f} vends/s {BARE_BATCH} vends each"
        )
        print(
            f"ratio bare / vends: {bare / rate:4.2f}x one each, {bare_batched / rate:4.2f}x batched   "
            "target: 500 vends/s with p99 < 100 ms: "
            f"{'met' if rate >= 500 and q[98] < 0.1 else 'NOT met'}"
        )
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
