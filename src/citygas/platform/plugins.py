"""Plug-ins: modules that register handlers, jobs, adapters. Found through the `citygas.plugins` entry
point group of installed packages and the `CITYGAS_PLUGINS` setting."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

# The contexts that register outbox handlers and scheduled jobs of their own.
BUILT_IN = [
    "citygas.notifications.ports",
    "citygas.platform.housekeeping",
    "citygas.payments.gateway.tasks",
    "citygas.payments.autopay.tasks",
    "citygas.care.tasks",
    "citygas.customers.profile_tasks",
    "citygas.tariffs.tasks",
]


def load_plugins(extra: list[str]) -> list[str]:
    loaded: list[str] = []
    for name in [*BUILT_IN, *extra]:
        importlib.import_module(name)
        loaded.append(name)
    for ep in entry_points(group="citygas.plugins"):
        ep.load()
        loaded.append(ep.value)
    return loaded
