"""The app factory: one FastAPI app serving the API, the portals, the customer app and health."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles

from citygas import __version__
from citygas.care import pages as care_pages
from citygas.customers import api as customers_api
from citygas.customers import profile_pages
from citygas.identity import pages as identity_pages
from citygas.metering import pages as metering_pages
from citygas.meters import api as meters_api
from citygas.meters import pages as meters_pages
from citygas.meters import sim_pages
from citygas.meters.simulator import SimulatorHub
from citygas.payments.autopay import pages as autopay_pages
from citygas.payments.bbps import api as bbps_api
from citygas.payments.csc import pages as csc_pages
from citygas.payments.gateway import api as gateway_api
from citygas.payments.gateway import attention_pages
from citygas.payments.gateway import pages as gateway_pages
from citygas.payments.settlement import pages as settlement_pages
from citygas.platform.db import make_engine
from citygas.platform.plugins import load_plugins
from citygas.platform.settings import Settings, get_settings
from citygas.platform.uow import Database
from citygas.platform.worker import Worker
from citygas.receipts import pages as receipt_pages
from citygas.vending import api as vending_api
from citygas.web import admin, api, app_pages, health, portals
from citygas.web.errors import install_error_handlers
from citygas.web.observability import RequestContext, configure_logging


def create_app(
    settings: Settings | None = None, *, db: Database | None = None, run_worker: bool | None = None
) -> FastAPI:
    settings = settings or get_settings()
    database = db or Database(make_engine(settings.database_url))
    load_plugins(settings.plugin_modules)
    start_worker = settings.run_worker_in_process if run_worker is None else run_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if start_worker:
            worker = Worker(
                database, poll_seconds=settings.worker_poll_seconds, max_attempts=settings.outbox_max_attempts
            )
            worker.start_in_thread()
        ticker = None
        if app.state.simulator is not None:
            await asyncio.to_thread(sim_pages.start_simulated_meters, database, app.state.simulator)
            ticker = asyncio.create_task(_tick_simulator(app))
        yield
        if ticker is not None:
            ticker.cancel()
            app.state.simulator.save_all()
        if worker is not None:
            worker.stopping.set()

    app = FastAPI(
        title="citygas API",
        version=__version__,
        description="Prepaid piped natural gas: customers, meters, vending, payments. Authenticate with "
        "`Authorization: Bearer <API key>`; errors are `application/problem+json` with a stable `code`.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.db = database
    app.state.simulator = (
        SimulatorHub(
            settings.simulator_state_dir, master_key=settings.master_key_bytes, speed=settings.simulator_speed
        )
        if settings.simulator_enabled
        else None
    )
    app.state.settings = settings
    app.add_middleware(RequestContext)
    # Pages, scripts and the Hindi font shrink to a third or less: what a 3G phone waits for.
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    for router in (
        health.router,
        api.router,
        customers_api.router,
        meters_api.router,
        vending_api.router,
        bbps_api.router,
        settlement_pages.router,
        csc_pages.router,
        gateway_api.router,
        gateway_api.webhook_router,
        gateway_pages.router,
        gateway_pages.return_router,
        attention_pages.router,
        *receipt_pages.ROUTERS,
        identity_pages.router,
        app_pages.router,
        metering_pages.router,
        care_pages.router,
        profile_pages.router,
        autopay_pages.router,
        portals.router,
        meters_pages.router,
        sim_pages.router,
        sim_pages.link_router,
        admin.router,
    ):
        app.include_router(router)
    return app


async def _tick_simulator(app: FastAPI) -> None:
    """Let the simulated households cook: advance every live simulated meter once a second."""
    hub: SimulatorHub = app.state.simulator
    saved = 0
    while True:
        await asyncio.sleep(1)
        await asyncio.to_thread(hub.tick)
        saved += 1
        if saved % 30 == 0:
            await asyncio.to_thread(hub.save_all)


def create_app_from_env() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level, json_logs=settings.log_json)
    return create_app(settings)
