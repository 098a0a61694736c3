"""A steadier guide than the throughput benchmark on a shared machine: SQL statements per vend, the CPU
time of one vend through the HTTP API, and how long the tenant's receipt counter is held, on PostgreSQL.

    .venv/bin/python bench/profile_vend.py [--vends N] [--profile] [--show-sql]

Seeds a throwaway database like bench_vend.py (fewer households), then vends one request at a time
through the ASGI app over an in-process httpx transport, everything on one thread (so that cProfile sees
the endpoint too). `--profile` adds a cProfile: own time by package, and the citygas functions by
cumulative time. Not run by `make bench` (its name does not start with bench_).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import os
import pstats
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("CITYGAS_ENVIRONMENT", "test")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio.to_thread
import bench_vend
import httpx
import psycopg
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from citygas.platform.db import make_engine
from citygas.platform.settings import Settings
from citygas.platform.uow import Database
from citygas.web.app import create_app

ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"


async def _inline(func: Any, *args: Any, **_kwargs: Any) -> Any:
    return func(*args)


class Watch:
    """Counts the statements, and times the receipt counter from its UPDATE to the commit."""

    def __init__(self, engine: Engine) -> None:
        self.statements: list[str] = []
        self.held: list[float] = []
        self._taken_at: list[float] = []
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(Session, "after_commit", self._committed)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        self.statements.append(statement)
        if "number_sequence" in statement:  # the tenant's receipt counter is locked from here
            self._taken_at.append(time.perf_counter())

    def _committed(self, _session: Session) -> None:
        if self._taken_at:
            self.held.append(time.perf_counter() - self._taken_at.pop())


def while_held(statements: list[str]) -> int:
    for n, statement in enumerate(statements):
        if "number_sequence" in statement:
            return len(statements) - n
    return 0


def print_profile(profiler: cProfile.Profile, vends: int) -> None:
    stats = pstats.Stats(profiler)
    by_package: collections.Counter[str] = collections.Counter()
    for (filename, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
        parts = filename.split("site-packages/")
        if len(parts) > 1:
            package = parts[1].split("/")[0]
        elif "/src/citygas/" in filename:
            package = "/".join(filename.split("/src/")[-1].split("/")[:2])
        else:
            package = "stdlib/builtins"
        by_package[package] += row[2]
    total = sum(by_package.values())
    print("own time by package (profiled, so inflated):")
    for package, seconds in by_package.most_common(15):
        print(f"  {package:40s} {seconds * 1000 / vends:6.2f} ms/vend  {seconds / total:5.1%}")
    stats.sort_stats("cumulative").print_stats("citygas", 60)


def run(url: str, args: argparse.Namespace) -> None:
    key = bench_vend.seed(url)
    engine = make_engine(url)
    watch = Watch(engine)
    settings = Settings(
        environment="test", database_url=url, log_json=False, log_level="WARNING", simulator_enabled=False
    )
    app = create_app(settings, db=Database(engine), run_worker=False)
    anyio.to_thread.run_sync = _inline  # type: ignore[assignment]
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")

    def vend(n: int) -> None:
        response = loop.run_until_complete(
            client.post(
                "/api/v1/vends",
                json={
                    "consumer_number": f"BEN-C-{(n % bench_vend.HOUSEHOLDS) + 1:08d}",
                    "amount_paise": 50_000,
                },
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"p-{n}"},
            )
        )
        assert response.status_code == 201, response.text

    for n in range(bench_vend.HOUSEHOLDS):  # every household's first vend: accounts opened, caches warm
        vend(n)
    watch.statements.clear()
    vend(bench_vend.HOUSEHOLDS)
    one = list(watch.statements)
    if args.show_sql:
        for statement in one:
            print(" ".join(statement.split())[:160])
    watch.statements.clear()
    watch.held.clear()
    walls: list[float] = []
    profiler = cProfile.Profile() if args.profile else None
    cpu = time.process_time()
    if profiler:
        profiler.enable()
    for n in range(bench_vend.HOUSEHOLDS + 1, bench_vend.HOUSEHOLDS + 1 + args.vends):
        started = time.perf_counter()
        vend(n)
        walls.append(time.perf_counter() - started)
    if profiler:
        profiler.disable()
    cpu = (time.process_time() - cpu) / args.vends
    kinds = collections.Counter(s.split(None, 1)[0].upper() for s in watch.statements)
    print(f"statements per vend: {len(watch.statements) / args.vends:.1f} (API key look-up included)")
    print("  by kind: " + ", ".join(f"{k} {v / args.vends:.1f}" for k, v in kinds.most_common()))
    print(
        f"per vend, one at a time: wall p50 {statistics.median(walls) * 1000:.2f} ms, CPU {cpu * 1000:.2f} ms"
    )
    print(
        f"receipt counter held, number taken → committed: p50 {statistics.median(watch.held) * 1000:.2f} ms, "
        f"{while_held(one)} statements"
    )
    if profiler:
        print_profile(profiler, args.vends)
    loop.run_until_complete(client.aclose())
    loop.close()
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vends", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--show-sql", action="store_true", help="print the statements of one vend")
    args = parser.parse_args()
    bench_vend.HOUSEHOLDS = max(60, args.vends // 3)  # at most five vends a household a day
    name = f"citygas_profile_{secrets.token_hex(3)}"
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        run(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", args)
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
