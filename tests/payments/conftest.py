"""Fixtures of the payment tests. Each channel keeps its own fixtures in a module of its own
(`conftest_bbps.py`, `gateway_setup` below); this file only makes them reachable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from citygas.payments.gateway import api as gateway_api
from citygas.payments.gateway import models as gateway_models
from citygas.payments.gateway import pages as gateway_pages
from citygas.payments.gateway import tasks as gateway_tasks
from citygas.platform import time as clock
from citygas.platform.settings import Settings
from citygas.platform.uow import Database
from citygas.web.app import create_app
from tests.vending.conftest import START, Shop, shop

__all__ = ["gateway_models", "gateway_tasks", "shop"]  # tables for create_all; the webhook handler


@pytest.fixture
def gateway_shop(shop: Shop) -> Iterator[Shop]:
    """A CGD ready to vend, with the clock at the moment its tariff is in force."""
    clock.freeze(START)
    yield shop
    clock.freeze(None)


@pytest.fixture
def gateway_client(db: Database, settings: Settings, gateway_shop: Shop) -> Iterator[TestClient]:
    app = create_app(settings, db=db, run_worker=False)
    included = {getattr(r, "path", "") for r in app.routes}
    for router in (
        gateway_api.router,
        gateway_api.webhook_router,
        gateway_pages.router,
        gateway_pages.return_router,
    ):
        if not any(getattr(r, "path", None) in included for r in router.routes):  # until app.py wires them
            app.include_router(router)
    with TestClient(app, base_url="http://testserver") as client:
        yield client
